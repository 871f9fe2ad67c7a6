"""Webhook delivery from the Partner Center stand-in: signatures, validation events and retries.

A tiny stdlib receiver on a free loopback port plays the app's endpoint. The signature is checked
the way the documented receiver does it: download the certificate from X-MS-Certificate-Url,
check its chain and organisation, verify RSA-SHA256 (PKCS#1 v1.5) over the exact body bytes.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from sandbox import Sandbox, ids, start_sandbox
from sandbox.scenario import load_scenario
from shared.clients.partner_center import PartnerCenterClient
from shared.http import Throttled, ssl_context
from tests.sandbox import test_partner_center_support as support
from tests.sandbox.test_partner_center_support import FakeClock, make_client

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes


class Receiver:
    """A loopback webhook endpoint answering ``status`` to every POST and keeping what it got."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.received: list[Received] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                owner.received.append(Received({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(owner.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/api/webhook"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


def quick_scenario() -> dict[str, Any]:
    """The default scenario with a short delivery backoff, so ten attempts take a moment."""
    scenario = load_scenario(None)
    scenario["webhooks"]["delivery"] = {"max_attempts": 10, "backoff_seconds": 0.005, "backoff_max_seconds": 0.02,
                                        "timeout_seconds": 5}
    return scenario


@pytest.fixture(scope="module")
def pc_sandbox() -> Iterator[Sandbox]:
    with start_sandbox(quick_scenario()) as instance:
        yield instance


pc_token = pytest.fixture(scope="module", name="pc_token")(support.module_token)
sandbox = pytest.fixture(name="sandbox")(support.fresh_sandbox)
clock = pytest.fixture(name="clock")(support.new_clock)
client = pytest.fixture(name="client")(support.pc_client)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    instance = Receiver()
    try:
        yield instance
    finally:
        instance.stop()


def pc(sandbox: Sandbox) -> Any:
    return sandbox.services["partner_center"]


def verify_like_a_receiver(sandbox: Sandbox, headers: dict[str, str], body: bytes) -> x509.Certificate:
    """The documented receiver steps; raises InvalidSignature when the body was changed."""
    assert headers["x-ms-signature-algorithm"] == "rsa-sha256"
    scheme, _, signature = headers["authorization"].partition(" ")
    assert scheme == "Signature"
    der = httpx.get(headers["x-ms-certificate-url"], verify=ssl_context(sandbox.ca_cert_path))
    assert der.status_code == 200
    certificate = x509.load_der_x509_certificate(der.content)
    root = x509.load_pem_x509_certificate(Path(sandbox.app_settings()["WEBHOOK_TRUSTED_ROOTS"]).read_bytes())
    certificate.verify_directly_issued_by(root)
    organisation = certificate.issuer.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value
    assert organisation == "Microsoft Corporation"
    assert certificate.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "Microsoft Corporation"
    public_key = certificate.public_key()
    assert isinstance(public_key, rsa.RSAPublicKey)
    public_key.verify(base64.b64decode(signature), body, padding.PKCS1v15(), hashes.SHA256())
    return certificate


def test_fraud_event_webhook_is_signed_verifiably(sandbox: Sandbox, client: PartnerCenterClient,
                                                  receiver: Receiver) -> None:
    client.register_webhook(receiver.url, ["azure-fraud-event-detected"])
    delivery = pc(sandbox).raise_fraud_event(ids.SUB_FABRIKAM_PROD)
    assert delivery.wait(10)
    assert delivery.state == "completed"
    got = receiver.received[0]
    event = json.loads(got.body)
    assert event == {
        "EventName": "azure-fraud-event-detected",
        "ResourceUri": f"{sandbox.url('partner_center')}/v1/fraudEvents?SubscriptionId={ids.SUB_FABRIKAM_PROD}"
                       "&EventStatus=Active",
        "AuditUri": None,
        "ResourceChangeUtcDate": event["ResourceChangeUtcDate"],
    }
    assert event["ResourceChangeUtcDate"].endswith("+00:00")
    verify_like_a_receiver(sandbox, got.headers, got.body)
    tampered = bytearray(got.body)
    tampered[10] ^= 0x01
    with pytest.raises(InvalidSignature):
        verify_like_a_receiver(sandbox, got.headers, bytes(tampered))


def test_the_resource_uri_answers_with_the_subscription_events(
    sandbox: Sandbox, client: PartnerCenterClient, receiver: Receiver,
) -> None:
    client.register_webhook(receiver.url, ["azure-fraud-event-detected"])
    assert pc(sandbox).raise_fraud_event(ids.SUB_FABRIKAM_PROD).wait(10)
    uri = json.loads(receiver.received[0].body)["ResourceUri"]
    events = client.http.request_json("GET", uri.removeprefix(sandbox.url("partner_center")),
                                      headers={"X-NewEventsModel": "true"})
    assert ids.MINING_ALERT_EVENT_ID in {e["eventId"] for e in events}
    assert all(e["subscriptionId"] == ids.SUB_FABRIKAM_PROD and e["eventStatus"] == "Active" for e in events)


def test_signature_moves_to_x_ms_signature_when_registered_so(
    sandbox: Sandbox, client: PartnerCenterClient, receiver: Receiver,
) -> None:
    client.register_webhook(receiver.url, ["azure-fraud-event-detected"], signature_in_ms_signature_header=True)
    assert pc(sandbox).raise_fraud_event(ids.SUB_NORTHWIND_DEV).wait(10)
    headers = receiver.received[0].headers
    assert "authorization" not in headers
    assert headers["x-ms-signature"].startswith("Signature ")
    verify_like_a_receiver(sandbox, {**headers, "authorization": headers["x-ms-signature"]}, receiver.received[0].body)


def test_validation_event_is_delivered_and_its_attempts_reported(
    sandbox: Sandbox, client: PartnerCenterClient, receiver: Receiver,
) -> None:
    client.register_webhook(receiver.url, ["test-created", "azure-fraud-event-detected"])
    correlation_id = client.send_validation_event()
    assert pc(sandbox).dispatcher.deliveries[correlation_id].wait(10)
    report = client.get_validation_event(correlation_id)
    assert report.correlation_id == correlation_id
    assert report.partner_id == ids.PARTNER_TENANT_ID
    assert report.callback_url == receiver.url
    assert report.status == "completed"
    assert [a.response_code for a in report.results] == ["OK"]
    assert report.results[0].succeeded and report.results[0].date_time_utc
    event = json.loads(receiver.received[0].body)
    assert event["EventName"] == "test-created"
    verify_like_a_receiver(sandbox, receiver.received[0].headers, receiver.received[0].body)


def test_a_failing_receiver_gets_ten_attempts(sandbox: Sandbox, client: PartnerCenterClient) -> None:
    failing = Receiver(status=500)
    try:
        client.register_webhook(failing.url, ["test-created"])
        correlation_id = client.send_validation_event()
        assert pc(sandbox).dispatcher.deliveries[correlation_id].wait(10)
        report = client.get_validation_event(correlation_id)
    finally:
        failing.stop()
    assert len(failing.received) == 10
    assert report.status == "failed"
    assert [a.response_code for a in report.results] == ["InternalServerError"] * 10
    assert len({r.body for r in failing.received}) == 1  # the same signed event every time


def test_an_unreachable_receiver_is_recorded_as_a_system_error(sandbox: Sandbox, client: PartnerCenterClient) -> None:
    gone = Receiver()
    url = gone.url
    gone.stop()
    client.register_webhook(url, ["test-created"])
    correlation_id = client.send_validation_event()
    assert pc(sandbox).dispatcher.deliveries[correlation_id].wait(10)
    report = client.get_validation_event(correlation_id)
    assert report.status == "failed" and len(report.results) == 10
    assert all(a.system_error and not a.succeeded for a in report.results)


def test_validation_events_are_limited_to_two_a_minute(
    sandbox: Sandbox, pc_token: str, clock: FakeClock, receiver: Receiver,
) -> None:
    with make_client(sandbox, pc_token, clock) as client:
        client.register_webhook(receiver.url, ["test-created"])
        client.send_validation_event()
        client.send_validation_event()
        with pytest.raises(Throttled) as caught:
            client.send_validation_event()
    assert 0 < caught.value.retry_after <= 61


def test_validation_events_need_a_test_created_registration(client: PartnerCenterClient, receiver: Receiver) -> None:
    client.register_webhook(receiver.url, ["azure-fraud-event-detected"])
    with pytest.raises(Exception, match="test-created"):
        client.send_validation_event()


def test_control_endpoint_raises_a_fraud_event(sandbox: Sandbox, client: PartnerCenterClient,
                                               receiver: Receiver) -> None:
    client.register_webhook(receiver.url, ["azure-fraud-event-detected"])
    response = httpx.post(f"{sandbox.url('partner_center')}/_sandbox/webhooks/raise",
                          json={"subscriptionId": ids.SUB_TAILSPIN_LAB, "eventStatus": "Active"},
                          verify=ssl_context(sandbox.ca_cert_path))
    assert response.status_code == 202
    delivery = pc(sandbox).dispatcher.deliveries[response.json()["id"]]
    assert delivery.wait(10) and delivery.state == "completed"
    assert ids.SUB_TAILSPIN_LAB in json.loads(receiver.received[0].body)["ResourceUri"]


def test_raising_without_a_registration_says_what_to_do(sandbox: Sandbox) -> None:
    response = httpx.post(f"{sandbox.url('partner_center')}/_sandbox/webhooks/raise",
                          json={"subscriptionId": ids.SUB_TAILSPIN_LAB}, verify=ssl_context(sandbox.ca_cert_path))
    assert response.status_code == 409
    assert "register" in response.json()["description"]


def test_unknown_certificate_names_are_not_served(sandbox: Sandbox) -> None:
    response = httpx.get(f"{sandbox.url('cert_host')}/cert/other.cer", verify=ssl_context(sandbox.ca_cert_path))
    assert response.status_code == 404


def test_raise_webhook_command_delivers_to_the_registered_receiver(
    sandbox: Sandbox, client: PartnerCenterClient, receiver: Receiver,
) -> None:
    client.register_webhook(receiver.url, ["azure-fraud-event-detected"])
    command = [sys.executable, "-m", "sandbox", "raise-webhook", "--subscription", ids.SUB_FABRIKAM_PROD,
               "--control", sandbox.url("partner_center"), "--ca", str(sandbox.ca_cert_path)]
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    delivery = pc(sandbox).dispatcher.deliveries[json.loads(done.stdout)["id"]]
    assert delivery.wait(10) and delivery.state == "completed"
    assert ids.SUB_FABRIKAM_PROD in json.loads(receiver.received[0].body)["ResourceUri"]


def test_raise_webhook_command_explains_a_missing_registration(sandbox: Sandbox) -> None:
    command = [sys.executable, "-m", "sandbox", "raise-webhook", "--subscription", ids.SUB_FABRIKAM_PROD,
               "--control", sandbox.url("partner_center"), "--ca", str(sandbox.ca_cert_path)]
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1
    assert "register" in done.stdout
