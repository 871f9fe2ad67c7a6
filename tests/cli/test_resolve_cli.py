"""`fraud-responder alerts resolve`, run as a real process against Azurite and the sandbox's Partner Center.

The sandbox's alerts are synced in by the real poller first; the CLI then writes the status back
to the sandbox and records the operator on the alert row and in the action ledger.
"""

from __future__ import annotations

import json
import os

import pytest

from devhost.azurite import Azurite
from sandbox import ids
from sandbox.core import Sandbox
from tests.cli.test_alerts_cli import cli
from tests.response.respond_support import MINING_KEY, Stage, stage, writes


def as_user(env: dict[str, str], name: str) -> dict[str, str]:
    """The CLI's environment as if ``name`` were logged in (against Azurite they are recorded as local:NAME)."""
    return {**env, "LOGNAME": name, "USER": name}


def _event(sandbox: Sandbox, event_id: str) -> dict[str, object]:
    alerts = sandbox.services["partner_center"].alerts  # type: ignore[attr-defined]
    return next(a for a in alerts if a["eventId"] == event_id)  # type: ignore[no-any-return]


@pytest.fixture
def synced(azurite: Azurite, fresh_sandbox: Sandbox) -> tuple[Stage, dict[str, str]]:
    st = stage(azurite, fresh_sandbox)
    return st, {**os.environ, **st.env, "FRAUD_RESPONDER_LOCAL_SETTINGS": "no-such-file.json"}


def test_resolve_as_fraud_writes_back_records_who_and_can_be_undone(synced: tuple[Stage, dict[str, str]],
                                                                    fresh_sandbox: Sandbox) -> None:
    st, env = synced
    before = len(fresh_sandbox.requests())

    out = cli(as_user(env, "alice"), "alerts", "resolve", ids.MINING_ALERT_EVENT_ID, "--reason", "fraud", "--json")

    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    # Partner Center got exactly this event, resolved as Fraud
    [write] = writes(fresh_sandbox, before)
    assert write.path == f"/v1/fraudEvents/subscription/{ids.SUB_FABRIKAM_PROD}/status"
    assert write.json() == {"EventIds": [ids.MINING_ALERT_EVENT_ID], "EventStatus": "Resolved",
                            "ResolvedReason": "Fraud"}
    assert _event(fresh_sandbox, ids.MINING_ALERT_EVENT_ID)["eventStatus"] == "Resolved"
    # who did it: on the alert row ...
    assert (result["alert"]["status"], result["alert"]["resolved_reason"], result["alert"]["resolved_by"]) == \
        ("resolved", "fraud", "operator:local:alice")
    shown = json.loads(cli(env, "alerts", "show", ids.MINING_ALERT_EVENT_ID, "--json").stdout)
    assert shown["resolved_by"] == "operator:local:alice" and shown["status"] == "resolved"
    # ... and in the action ledger
    rows = json.loads(cli(env, "actions", "list", "--alert", MINING_KEY, "--json").stdout)
    [row] = [r for r in rows if r["id"] == result["action_id"]]
    assert (row["action"], row["state"], row["actor"]) == ("update_status", "succeeded", "operator:local:alice")
    # ... and the fraud verdict planned for the whole customer waits for approval in `actions list`
    verdict = {r["id"]: r for r in rows if r["rule"] == "verdict.fraud" and r["state"] == "awaiting-approval"}
    assert set(verdict) <= set(result["verdict_actions"])
    assert sorted(r["action"] for r in verdict.values()) == [
        "open_service_request", "remove_role_assignments", "require_admin_password_change",
        "require_admin_password_change", "suspend_customer_subscriptions", "suspend_customer_subscriptions"]

    # the same resolve again changes nothing at the source
    again = cli(as_user(env, "alice"), "alerts", "resolve", ids.MINING_ALERT_EVENT_ID, "--reason", "fraud", "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["already_done"] is True
    assert [w for w in writes(fresh_sandbox, before) if w.method == "POST"] == [write]

    # a mistaken resolution is reopened with `actions undo`
    undo = cli(as_user(env, "bob"), "actions", "undo", result["action_id"])
    assert undo.returncode == 0, undo.stderr
    assert _event(fresh_sandbox, ids.MINING_ALERT_EVENT_ID)["eventStatus"] == "Active"
    assert st.alert().status == "active"
    # the verdict no longer holds: what waited for approval expired, nothing of it ran
    after = {r["id"]: r for r in json.loads(cli(env, "actions", "list", "--alert", MINING_KEY, "--json").stdout)}
    assert {after[i]["state"] for i in verdict} == {"expired"}


def test_legitimate_is_sent_to_partner_center_as_ignore(synced: tuple[Stage, dict[str, str]],
                                                        fresh_sandbox: Sandbox) -> None:
    _st, env = synced
    alerts = json.loads(cli(env, "alerts", "list", "--status", "active", "--json").stdout)
    other = next(a for a in alerts if a["id"] != ids.MINING_ALERT_EVENT_ID and not a["is_test"])
    before = len(fresh_sandbox.requests())

    out = cli(as_user(env, "carol"), "alerts", "resolve", other["key"], "--reason", "legitimate")

    assert out.returncode == 0, out.stderr
    assert "resolved (legitimate) by operator:local:carol" in out.stdout
    [write] = writes(fresh_sandbox, before)
    assert write.json()["ResolvedReason"] == "Ignore"
    assert _event(fresh_sandbox, other["id"])["eventStatus"] == "Resolved"


def test_unknown_alert_fails_with_what_to_do_and_bad_reason_is_usage(synced: tuple[Stage, dict[str, str]],
                                                                     fresh_sandbox: Sandbox) -> None:
    _st, env = synced
    before = len(fresh_sandbox.requests())
    missing = cli(as_user(env, "alice"), "alerts", "resolve", "no-such-alert", "--reason", "fraud")
    assert missing.returncode == 1
    assert missing.stderr.strip().splitlines()[-1].startswith("error: no stored alert 'no-such-alert'")
    assert "fraud-responder alerts list" in missing.stderr
    usage = cli(env, "alerts", "resolve", ids.MINING_ALERT_EVENT_ID, "--reason", "maybe")
    assert usage.returncode == 2 and "invalid choice" in usage.stderr
    assert writes(fresh_sandbox, before) == []


def test_a_source_that_refuses_fails_in_one_line(synced: tuple[Stage, dict[str, str]], fresh_sandbox: Sandbox) -> None:
    from sandbox.faults import Fault

    _st, env = synced
    fresh_sandbox.add_fault(Fault("partner_center", "status", method="POST", path="/status$", status=403, times=None))
    out = cli(as_user(env, "alice"), "alerts", "resolve", ids.MINING_ALERT_EVENT_ID, "--reason", "fraud")
    assert out.returncode == 1
    error = out.stderr.strip().splitlines()[-1]
    assert error.startswith("error: updating fraud event") and "HTTP 403" in error
    assert _event(fresh_sandbox, ids.MINING_ALERT_EVENT_ID)["eventStatus"] == "Active"
