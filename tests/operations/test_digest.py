"""The daily digest, built from real data: the sandbox's alerts synced into Azurite and the
responder run on the crypto-mining alert (pending approvals), one approval failing at ARM, one
poison record. Printed by the CLI, e-mailed through the sandbox's Graph, and sent by the timer
through the dev host exactly once per day."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import httpx

from devhost.azurite import Azurite
from devhost.host import DevHost
from sandbox import ids
from sandbox.core import Sandbox
from sandbox.faults import Fault
from shared.names import RESPOND_QUEUE
from shared.operations.digest import build_digest
from shared.response.jobs import record_poison
from shared.response.ledger import FAILED
from shared.views import alert_json, query_alerts
from tests.conftest import REPO_ROOT
from tests.response.respond_support import MINING_KEY, Stage, respond_one, stage, take_job

NEVER = "0 0 0 1 1 *"
"""A schedule that does not fire during a test (the timer is fired by hand)."""


def responded(azurite: Azurite, sandbox: Sandbox) -> Stage:
    """The sandbox synced and the mining alert answered with the default policy (approvals wait)."""
    st = stage(azurite, sandbox)
    _job, body = take_job(st)
    result = respond_one(body, responder=st.responder())
    assert result is not None and not result.deferred
    return st


def mail(sandbox: Sandbox) -> list[dict[str, Any]]:
    return sandbox.services["graph"].sent_mail()  # type: ignore[attr-defined,no-any-return]


def cli(st: Stage, *args: str, **overrides: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **st.env, "FRAUD_RESPONDER_LOCAL_SETTINGS": str(REPO_ROOT / "does-not-exist.json"),
           **overrides}
    return subprocess.run([sys.executable, "-m", "shared.cli", *args], env=env, capture_output=True, text=True,
                          check=False, timeout=120, cwd=REPO_ROOT)


def test_digest_lists_unresolved_alerts_pending_actions_failures_poison_and_tokens(
        azurite: Azurite, fresh_sandbox: Sandbox) -> None:
    st = responded(azurite, fresh_sandbox)
    responder = st.responder()
    pending = responder.list_actions(pending_only=True)
    # one approval fails for good: ARM refuses to deallocate the VM
    stop = next(r for r in pending if r.action == "stop_resources")
    fresh_sandbox.add_fault(Fault(service="arm", kind="status", status=403, method="POST", path="deallocate",
                                  times=None))
    assert responder.approve(stop.action_id, "alice").state == FAILED
    # one respond message gave up
    record_poison(st.store, queue=RESPOND_QUEUE, body=b'{"alert_key": "partner_center:x"}',
                  error=RuntimeError("storage kept timing out"), dequeue_count=5,
                  job={"alert_key": "partner_center:x", "version": 1})

    digest = build_digest(st.settings, st.store)
    doc = digest.as_dict()
    text = digest.as_text()

    # unresolved alerts, grouped by customer and type: every stored alert that is not resolved
    unresolved = [alert_json(e) for e in query_alerts(st.store) if alert_json(e)["status"] != "resolved"]
    assert doc["counts"]["unresolved_alerts"] == len(unresolved) > 0
    listed = {a["id"] for g in doc["unresolved"] for a in g["alerts"]}
    assert listed == {a["id"] for a in unresolved}
    for group in doc["unresolved"]:
        assert {a["customer_tenant_id"] for a in unresolved if a["id"] in {x["id"] for x in group["alerts"]}} \
            == {group["customer_tenant_id"]}
        assert len({a["type"] for a in unresolved if a["id"] in {x["id"] for x in group["alerts"]}}) == 1
    mining = next(g for g in doc["unresolved"] if ids.MINING_ALERT_EVENT_ID in {a["id"] for a in g["alerts"]})
    assert mining["customer_tenant_id"] == ids.CUSTOMER_FABRIKAM
    assert ids.MINING_ALERT_EVENT_ID in text and ids.CUSTOMER_FABRIKAM in text
    # actions waiting for approval, each with the command that approves it
    waiting = {r.action_id for r in responder.list_actions(pending_only=True)}
    assert {p["id"] for p in doc["pending"]} == waiting and stop.action_id not in waiting
    for action_id in waiting:
        assert f"fraud-responder actions approve {action_id}\n" in text + "\n"
    # failures of the last 24 hours, with the error and how to retry
    assert [f["id"] for f in doc["failures"]] == [stop.action_id]
    assert "403" in doc["failures"][0]["error"]
    assert f"retry: fraud-responder actions approve {stop.action_id}" in text
    # the poison record
    assert [p["alert"] for p in doc["poison"]["records"]] == ["partner_center:x"]
    assert "storage kept timing out" in text and "fraud-responder poison list" in text
    # token health: the refresh token was rolled by this run, so ~90 days are left
    assert doc["tokens"]["state"] == "ok" and doc["tokens"]["refresh_token"]["days_left"] >= 89
    assert "TOKEN HEALTH: OK" in text
    assert any(f"({days} days left)" in text for days in (89, 90))
    # the subject says what needs attention; the JSON is JSON
    assert digest.subject().startswith("[Action needed] Fraud responder digest ")
    assert f"{len(waiting)} actions waiting for approval" in digest.subject()
    assert json.loads(json.dumps(doc)) == doc


def test_digest_shows_a_refused_refresh_token_with_the_reconsent_steps(azurite: Azurite,
                                                                       fresh_sandbox: Sandbox) -> None:
    st = stage(azurite, fresh_sandbox)
    fresh_sandbox.services["entra"].set_state(refresh_token_state="mfa_expired")  # type: ignore[attr-defined]
    from shared.intake.jobs import IntakeRuntime, run_poll

    assert not run_poll(runtime=IntakeRuntime.from_settings(st.settings)).ok  # no cached access token

    digest = build_digest(st.settings, st.store)
    assert digest.as_dict()["tokens"]["state"] == "failing" and digest.needs_attention
    text = digest.as_text()
    assert "TOKEN HEALTH: FAILING" in text and "AADSTS50078" in text
    steps = text.split("What to do:", 1)[1]
    assert "New-PartnerAccessToken" in steps and st.settings.refresh_token_secret_name in steps
    assert "token failing" in digest.subject()


def test_digest_lists_a_failing_detector(azurite: Azurite, fresh_sandbox: Sandbox) -> None:
    from shared.detection.runner import DetectRun, Tally, record_detectors

    st = stage(azurite, fresh_sandbox)
    record_detectors(st.store, DetectRun(detectors={"quota_jump": Tally(errors=["sub-1: HttpResponseError: 503"])}),
                     trigger="queue")

    digest = build_digest(st.settings, st.store)

    assert digest.needs_attention
    assert "detector quota_jump" in digest.as_text() and "HttpResponseError: 503" in digest.as_text()


def test_cli_prints_the_digest_and_send_puts_exactly_one_email_to_the_security_contacts(
        azurite: Azurite, fresh_sandbox: Sandbox) -> None:
    st = responded(azurite, fresh_sandbox)
    before = len(mail(fresh_sandbox))

    printed = cli(st, "digest")
    assert printed.returncode == 0, printed.stderr
    assert "ACTIONS WAITING FOR APPROVAL" in printed.stdout and ids.MINING_ALERT_EVENT_ID in printed.stdout
    as_json = cli(st, "digest", "--json")
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout)["counts"]["pending_actions"] > 0
    assert len(mail(fresh_sandbox)) == before  # printing sends nothing

    sent = cli(st, "digest", "--send")
    assert sent.returncode == 0, sent.stderr
    new = mail(fresh_sandbox)[before:]
    assert len(new) == 1
    message = new[0]["message"]
    assert [r["emailAddress"]["address"] for r in message["toRecipients"]] == [ids.SECURITY_CONTACT]
    assert new[0]["from"].lower() == ids.NOTIFY_SENDER and new[0]["tenantId"] == ids.PARTNER_TENANT_ID
    assert message["subject"].startswith("[Action needed] Fraud responder digest")
    assert ids.MINING_ALERT_EVENT_ID in message["body"]["content"]
    assert "fraud-responder actions approve" in message["body"]["content"]
    assert f"e-mailed from {ids.NOTIFY_SENDER} to {ids.SECURITY_CONTACT}" in sent.stderr


def test_cli_send_without_security_contacts_fails_in_one_line_that_says_what_to_set(
        azurite: Azurite, fresh_sandbox: Sandbox) -> None:
    st = stage(azurite, fresh_sandbox)
    before = len(mail(fresh_sandbox))
    result = cli(st, "digest", "--send", SECURITY_CONTACTS="")
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "SECURITY_CONTACTS" in result.stderr
    assert result.stderr.startswith("error: ")
    assert len(mail(fresh_sandbox)) == before
    assert cli(st, "digest", "--bogus").returncode == 2


def test_cli_digest_help_describes_send_and_json() -> None:
    result = subprocess.run([sys.executable, "-m", "shared.cli", "digest", "--help"], capture_output=True, text=True,
                            check=False, timeout=60, cwd=REPO_ROOT)
    assert result.returncode == 0
    assert "--send" in result.stdout and "SECURITY_CONTACTS" in result.stdout and "--json" in result.stdout


def test_timer_sends_the_digest_once_per_day_through_the_dev_host(azurite: Azurite, fresh_sandbox: Sandbox) -> None:
    st = responded(azurite, fresh_sandbox)
    before = len(mail(fresh_sandbox))
    environ = {**st.env, "DIGEST_SCHEDULE": NEVER, "POLL_SCHEDULE": NEVER, "DETECT_SCHEDULE": NEVER,
               "FRAUD_RESPONDER_LOCAL_SETTINGS": str(REPO_ROOT / "does-not-exist.json")}
    with DevHost(environ=environ, http_port=0, functions=["daily_digest"]) as host:
        for attempt in (1, 2):
            response = httpx.post(f"{host.base_url}/admin/functions/daily_digest", json={"input": ""})
            assert response.status_code == 202
            runs = host.invocations.wait_for(lambda i: i.function == "daily_digest", count=attempt)
            assert all(r.succeeded for r in runs), [r.error for r in runs]
    new = mail(fresh_sandbox)[before:]
    assert len(new) == 1  # the second run found today's digest already sent
    assert new[0]["message"]["subject"].startswith("[Action needed] Fraud responder digest")
    assert MINING_KEY.split(":")[1] in new[0]["message"]["body"]["content"]
