"""`fraud-responder webhook register|show|test`, run as a real process against the sandbox's Partner Center.

The receiver is the app's own /api/webhooks/partner-center, served by the dev host in this test on a
free loopback port: the sandbox signs the test event, the receiver fetches the certificate from the
sandbox's cert host and verifies it, and the CLI reports the attempts Partner Center recorded.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from devhost.azurite import Azurite
from devhost.host import DevHost
from sandbox.core import Sandbox
from sandbox.webhooks import DeliveryConfig, Registration
from tests.cli.test_alerts_cli import cli
from tests.conftest import REPO_ROOT, settings_env

ROUTE = "/api/webhooks/partner-center"


def partner_center(sandbox: Sandbox) -> Any:
    return sandbox.services["partner_center"]


@pytest.fixture
def app_env(azurite: Azurite, fresh_sandbox: Sandbox) -> dict[str, str]:
    """The app's settings: Azurite, the sandbox, no local.settings.json."""
    return settings_env(azurite, **fresh_sandbox.app_settings(),
                        FRAUD_RESPONDER_LOCAL_SETTINGS=str(REPO_ROOT / "does-not-exist.json"))


@pytest.fixture
def env(app_env: dict[str, str]) -> dict[str, str]:
    return {**os.environ, **app_env}


@pytest.fixture
def receiver(app_env: dict[str, str]) -> Iterator[str]:
    """The app's webhook receiver on the dev host; yields its URL with the webhook's own function key."""
    with DevHost(environ=app_env, http_port=0, functions=["receive_webhook"]) as host:
        yield f"{host.base_url}{ROUTE}?code={host.keys.function_key('receive_webhook')}"


def closed_port_url() -> str:
    """A loopback URL nobody listens on (the port was free a moment ago)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}{ROUTE}"


def test_register_then_test_reports_the_accepted_delivery(env: dict[str, str], receiver: str,
                                                          fresh_sandbox: Sandbox) -> None:
    assert partner_center(fresh_sandbox).registration is None
    registered = cli(env, "webhook", "register", "--url", receiver, "--json")
    assert registered.returncode == 0, registered.stderr
    doc = json.loads(registered.stdout)
    assert doc["action"] == "created" and doc["webhook_url"] == receiver.split("?", maxsplit=1)[0] + "?code=***"
    assert set(doc["webhook_events"]) == {"azure-fraud-event-detected", "usagerecords-thresholdExceeded",
                                          "test-created"}
    assert partner_center(fresh_sandbox).registration.webhook_url == receiver

    tested = cli(env, "webhook", "test", "--wait", "30")

    assert tested.returncode == 0, tested.stderr
    assert "attempt 1: OK" in tested.stderr  # progress, as attempts appear
    rows = [line.split() for line in tested.stdout.splitlines()[1:] if line[:1].isdigit()]
    assert [(row[0], row[2]) for row in rows] == [("1", "OK")]
    assert "the receiver accepted the test event" in tested.stdout
    # the app's receiver really got it: a signed test-created event, verified
    [delivery] = partner_center(fresh_sandbox).dispatcher.deliveries.values()
    assert delivery.event_name == "test-created"
    assert json.loads(delivery.attempts[0].response_message)["status"] == "recorded"


def test_register_updates_the_registration_and_keeps_other_events(env: dict[str, str],
                                                                  fresh_sandbox: Sandbox) -> None:
    pc = partner_center(fresh_sandbox)
    with pc.lock:
        pc.registration = Registration("http://127.0.0.1:1/old", ["invoice-ready"])
    url = closed_port_url() + "?code=s3cret-function-key"

    out = cli(env, "webhook", "register", "--url", url)

    assert out.returncode == 0, out.stderr
    assert pc.registration.webhook_url == url
    assert pc.registration.webhook_events == ["azure-fraud-event-detected", "usagerecords-thresholdExceeded",
                                              "test-created", "invoice-ready"]
    assert out.stdout.startswith("webhook registration updated")
    assert "replacing the registered URL http://127.0.0.1:1/old" in out.stderr
    # the function key in the URL is a secret: never printed
    shown = cli(env, "webhook", "show", "--json")
    for text in (out.stdout, out.stderr, shown.stdout):
        assert "s3cret" not in text
    assert json.loads(shown.stdout)["webhook_url"].endswith("?code=***")
    assert [r.method for r in fresh_sandbox.requests("partner_center") if r.path == "/webhooks/v1/registration"] \
        == ["GET", "PUT", "GET"]


def test_failed_deliveries_are_reported_attempt_by_attempt_and_exit_1(env: dict[str, str],
                                                                      fresh_sandbox: Sandbox) -> None:
    pc = partner_center(fresh_sandbox)
    pc.dispatcher.config = DeliveryConfig(max_attempts=2, backoff_seconds=0.05, timeout_seconds=2)
    assert cli(env, "webhook", "register", "--url", closed_port_url()).returncode == 0

    out = cli(env, "webhook", "test", "--wait", "30")

    assert out.returncode == 1
    assert "attempt 1: no response (ConnectionRefusedError" in out.stderr
    assert "attempt 2: no response" in out.stderr
    assert out.stdout.count("ConnectionRefusedError") == 2
    assert "no attempt succeeded" in out.stdout


def test_usage_and_missing_registration_errors_say_what_to_do(env: dict[str, str], fresh_sandbox: Sandbox) -> None:
    missing = cli(env, "webhook", "test")
    assert missing.returncode == 1 and "fraud-responder webhook register --url URL" in missing.stderr
    plain_http = cli(env, "webhook", "register", "--url", "http://contoso.example/api/webhooks/partner-center")
    assert plain_http.returncode == 1 and "https://" in plain_http.stderr
    assert cli(env, "webhook", "register").returncode == 2  # --url is required
    unknown = cli(env, "webhook", "register", "--url", closed_port_url(), "--event", "no-such-event")
    assert unknown.returncode == 1 and "unknown webhook event 'no-such-event'" in unknown.stderr
    assert partner_center(fresh_sandbox).registration is None
