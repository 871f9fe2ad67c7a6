"""The poller alone finds the sandbox's alerts: real MSAL, Key Vault, httpx clients and Azurite."""

from __future__ import annotations

import copy
import json

import pytest

from devhost.azurite import Azurite
from sandbox import ids
from sandbox.core import Sandbox
from sandbox.faults import Fault
from shared.health import check_sources
from shared.intake.checkpoints import last_syncs, source_syncs, token_health
from shared.intake.jobs import IntakeRuntime, handle_sync_message, run_poll
from shared.jobs import respond_jobs_of
from shared.names import RESPOND_QUEUE
from shared.operations.digest import build_digest
from shared.settings import load_settings
from shared.views import find_alert, query_alerts
from tests.conftest import settings_env


def runtime(azurite: Azurite, sandbox: Sandbox, **overrides: str) -> IntakeRuntime:
    env = settings_env(azurite, **sandbox.app_settings(), **overrides)
    return IntakeRuntime.from_settings(load_settings(env))


def test_poll_stores_every_sandbox_alert_once_and_enqueues_a_job_each(azurite: Azurite,
                                                                      fresh_sandbox: Sandbox) -> None:
    rt = runtime(azurite, fresh_sandbox, ALERT_SOURCES="partner_center,graph")
    rt.queue.count(RESPOND_QUEUE)  # creates it
    from shared.storage.clients import queue_client

    queue_client(rt.settings.storage, RESPOND_QUEUE).clear_messages()  # queues are shared by all tests
    first = run_poll(runtime=rt)
    assert first.ok, first.as_dict()
    totals = first.totals()
    assert totals["new"] > 5 and totals["rejected"] == 0
    mining = find_alert(rt.store, ids.MINING_ALERT_EVENT_ID)
    assert mining is not None and mining["severity"] == "high"
    assert {r[0] for r in json.loads(mining["affected_resources"])} == {ids.MINING_VM_1, ids.MINING_VM_2}
    stored = list(query_alerts(rt.store))
    assert len(stored) == totals["new"]
    assert {a["source"] for a in stored} == {"partner_center", "graph"}
    # One message per committed transaction (one customer's alerts of one source), holding every job.
    assert rt.queue.count(RESPOND_QUEUE) == totals["messages"] > 0
    jobs = [job for m in rt.queue.peek(RESPOND_QUEUE, 32) for job in respond_jobs_of(m.json())]
    assert len(jobs) == totals["enqueued"] > totals["messages"]

    again = run_poll(runtime=rt)
    assert again.totals()["new"] == 0 and again.totals()["enqueued"] == 0
    assert rt.queue.count(RESPOND_QUEUE) == totals["messages"]
    assert {s["trigger"] for s in last_syncs(rt.store)} == {"timer"}
    assert all(t["ok"] for t in token_health(rt.store))


def test_sync_job_for_one_subscription_syncs_only_it(azurite: Azurite, fresh_sandbox: Sandbox) -> None:
    rt = runtime(azurite, fresh_sandbox)
    from shared.intake.webhook import TableDeliveryLog

    deliveries = TableDeliveryLog(rt.store)
    deliveries.insert_once("d" * 64, {"State": "received", "ReceivedAt": "2026-01-01T00:00:00+00:00"})
    job = {"scope": "subscription", "subscription_id": ids.SUB_FABRIKAM_PROD, "source": "partner_center",
           "trigger": "webhook", "delivery_id": "d" * 64}
    run = handle_sync_message(json.dumps(job).encode(), runtime=rt)
    assert run is not None and run.ok
    state = deliveries.state("d" * 64)
    assert state is not None and state[0] == "synced"  # later redeliveries of that webhook are duplicates
    subs = {a["subscription_id"] for a in query_alerts(rt.store)}
    assert subs == {ids.SUB_FABRIKAM_PROD}


def test_a_sync_job_logs_when_it_started_and_when_its_respond_jobs_were_sent(
        azurite: Azurite, fresh_sandbox: Sandbox, caplog: pytest.LogCaptureFixture) -> None:
    """The queue's wait and the sync's own time are visible per job in the log (and to the containment bench)."""
    import logging

    rt = runtime(azurite, fresh_sandbox)
    job = {"scope": "subscription", "subscription_id": ids.SUB_FABRIKAM_PROD, "source": "partner_center",
           "trigger": "webhook", "delivery_id": "e" * 64, "requested_at": "2026-01-01T00:00:00Z"}
    with caplog.at_level(logging.INFO, logger="shared.intake"):
        run = handle_sync_message(json.dumps(job).encode(), dequeue_count=2, runtime=rt)
    assert run is not None and run.ok
    messages = [r.getMessage() for r in caplog.records]
    started = [m for m in messages if m.startswith("alerts-sync job started")]
    assert started and "trigger webhook" in started[0] and "eeeeeeee" in started[0]
    assert "requested 2026-01-01T00:00:00Z" in started[0] and "delivery count 2" in started[0]
    sent = [m for m in messages if "respond job(s) sent" in m]
    assert sent and f"subscription {ids.SUB_FABRIKAM_PROD}" in sent[0]
    assert messages.index(started[0]) < messages.index(sent[0])


def test_malformed_sync_job_is_dropped_not_retried(azurite: Azurite, fresh_sandbox: Sandbox) -> None:
    rt = runtime(azurite, fresh_sandbox)
    assert handle_sync_message(b"not json", runtime=rt) is None
    assert handle_sync_message(b'{"scope": "subscription", "subscription_id": "x"}', runtime=rt) is None


def test_expired_refresh_token_is_recorded_as_token_health_and_ends_cleanly(azurite: Azurite,
                                                                            fresh_sandbox: Sandbox) -> None:
    entra = fresh_sandbox.services["entra"]
    entra.set_state(refresh_token_state="expired")  # type: ignore[attr-defined]
    rt = runtime(azurite, fresh_sandbox)
    run = run_poll(runtime=rt)
    assert not run.ok and "AADSTS700082" in run.token_errors["partner_center"]
    health = {t["principal"]: t for t in token_health(rt.store)}
    assert health["partner_center"]["ok"] is False
    assert health["partner_center"]["detail"]["code"] == 700082
    token_requests = [r for r in fresh_sandbox.requests("entra") if r.path.endswith("/token")]
    assert len(token_requests) <= 2  # no tight retry loop


def test_cli_poll_once_prints_a_summary_and_alerts_list_shows_the_mining_alert(
    azurite: Azurite, fresh_sandbox: Sandbox
) -> None:
    import os
    import subprocess
    import sys

    env = {**os.environ, **settings_env(azurite, **fresh_sandbox.app_settings()),
           "FRAUD_RESPONDER_LOCAL_SETTINGS": "no-such-file.json"}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "shared.cli", *args], env=env, capture_output=True,
                              text=True, check=False, timeout=120)

    polled = cli("poll", "--once")
    assert polled.returncode == 0, polled.stderr
    assert polled.stdout.splitlines()[0].split()[:3] == ["SOURCE", "FETCHED", "NEW"]
    listed = cli("alerts", "list", "--json")
    mining = [a for a in json.loads(listed.stdout) if a["id"] == ids.MINING_ALERT_EVENT_ID]
    assert len(mining) == 1 and len(mining[0]["affected_resources"]) == 2


# --- one failing source does not stop the others (issue 10, item 2) ------------------------------

PC_FAULTS = {
    "403": Fault(service="partner_center", kind="status", status=403, path="/v1/fraudEvents", times=None,
                 message="Forbidden (injected)"),
    "503": Fault(service="partner_center", kind="status", status=503, retry_after=0, path="/v1/fraudEvents",
                 times=None),
    "malformed page": Fault(service="partner_center", kind="malformed_json", path="/v1/fraudEvents", times=None),
    "key vault": Fault(service="key_vault", kind="status", status=403, path="partner-center-refresh-token",
                       times=None),
}


@pytest.mark.parametrize("fault", PC_FAULTS, ids=list(PC_FAULTS))
def test_a_failing_partner_center_does_not_stop_graph(azurite: Azurite, fresh_sandbox: Sandbox, fault: str) -> None:
    fresh_sandbox.add_fault(copy.deepcopy(PC_FAULTS[fault]))
    rt = runtime(azurite, fresh_sandbox, ALERT_SOURCES="partner_center,graph")
    run = run_poll(runtime=rt)  # does not raise
    assert not run.ok
    failures = {**run.errors, **run.token_errors}
    assert set(failures) == {"partner_center"}, failures
    assert run.results["graph"].new > 0
    assert {a["source"] for a in query_alerts(rt.store)} == {"graph"}
    sources = {s["source"]: s for s in source_syncs(rt.store)}
    assert sources["graph"]["ok"] is True and sources["partner_center"]["ok"] is False
    assert sources["partner_center"]["error"]
    health = check_sources(rt.settings)
    assert not health.ok and "partner_center" in health.detail
    digest = build_digest(rt.settings, rt.store)
    assert "partner_center" in digest.as_text()
    # Once Partner Center answers again, its source is healthy again and its alerts arrive.
    fresh_sandbox.clear_faults()
    again = run_poll(runtime=rt)
    assert again.ok and again.results["partner_center"].new > 0
    assert all(s["ok"] for s in source_syncs(rt.store))
    assert check_sources(rt.settings).ok


def test_cli_poll_once_reports_each_source_and_exits_1_when_one_failed(azurite: Azurite,
                                                                       fresh_sandbox: Sandbox) -> None:
    import os
    import subprocess
    import sys

    fresh_sandbox.add_fault(copy.deepcopy(PC_FAULTS["403"]))
    env = {**os.environ, **settings_env(azurite, **fresh_sandbox.app_settings(), ALERT_SOURCES="partner_center,graph"),
           "FRAUD_RESPONDER_LOCAL_SETTINGS": "no-such-file.json"}
    polled = subprocess.run([sys.executable, "-m", "shared.cli", "poll", "--once"], env=env, capture_output=True,
                            text=True, check=False, timeout=120)
    assert polled.returncode == 1, polled.stderr
    rows = {line.split()[0]: line for line in polled.stdout.splitlines()[1:]}
    assert "failed" in rows["partner_center"] and "ok" in rows["graph"].split()
    assert "partner_center" in polled.stderr and "403" in polled.stderr


# --- PascalCase records and huge hit counts, end to end through the sandbox (item 1) -------------


def test_pascal_case_records_with_huge_hit_counts_are_stored_like_camel_case(azurite: Azurite,
                                                                            fresh_sandbox: Sandbox) -> None:
    pc = fresh_sandbox.services["partner_center"]
    template = next(a for a in pc.alerts if a["eventId"] == ids.MINING_ALERT_EVENT_ID)  # type: ignore[attr-defined]
    pascal = {k[:1].upper() + k[1:]: v for k, v in copy.deepcopy(template).items()}
    pascal.update(EventId="pascal-case-event-1", HitCount="98765432109876543210")
    big = {**copy.deepcopy(template), "eventId": "big-hit-count-1", "hitCount": str(2**40)}
    pc.alerts.extend([pascal, big])  # type: ignore[attr-defined]
    rt = runtime(azurite, fresh_sandbox, ALERT_SOURCES="partner_center")
    run = run_poll(runtime=rt)
    assert run.ok, run.as_dict()
    assert run.results["partner_center"].quarantined == 0
    stored = find_alert(rt.store, "pascal-case-event-1")
    assert stored is not None
    assert (stored["status"], stored["customer_tenant_id"], stored["severity"]) == (
        "active", ids.CUSTOMER_FABRIKAM, "high")
    assert stored["hit_count"] == "98765432109876543210"
    big_row = find_alert(rt.store, "big-hit-count-1")
    assert big_row is not None and big_row["hit_count"] == 2**40
    assert run_poll(runtime=rt).totals()["unchanged"] == run.totals()["new"]


def test_a_webhook_sync_job_whose_source_fails_is_retried_by_the_queue(azurite: Azurite,
                                                                      fresh_sandbox: Sandbox) -> None:
    from shared.intake.jobs import SourceSyncFailed
    from shared.intake.webhook import TableDeliveryLog

    fresh_sandbox.add_fault(copy.deepcopy(PC_FAULTS["403"]))
    rt = runtime(azurite, fresh_sandbox)
    deliveries = TableDeliveryLog(rt.store)
    deliveries.insert_once("e" * 64, {"State": "received", "ReceivedAt": "2026-01-01T00:00:00+00:00"})
    job = {"scope": "subscription", "subscription_id": ids.SUB_FABRIKAM_PROD, "source": "partner_center",
           "trigger": "webhook", "delivery_id": "e" * 64}
    with pytest.raises(SourceSyncFailed, match="partner_center"):
        handle_sync_message(json.dumps(job).encode(), runtime=rt)
    state = deliveries.state("e" * 64)
    assert state is not None and state[0] != "synced"
    sources = {s["source"]: s for s in source_syncs(rt.store)}
    assert sources["partner_center"]["ok"] is False


def test_a_page_with_items_that_are_not_objects_still_stores_the_others(azurite: Azurite,
                                                                        fresh_sandbox: Sandbox) -> None:
    from shared.intake.sync import quarantined
    from shared.names import ALERTS_TABLE

    pc = fresh_sandbox.services["partner_center"]
    pc.alerts[1:1] = ["not an event", 42]  # type: ignore[attr-defined]  # served on every listing
    rt = runtime(azurite, fresh_sandbox, ALERT_SOURCES="partner_center")
    run = run_poll(runtime=rt)
    assert run.ok, run.as_dict()
    assert find_alert(rt.store, ids.MINING_ALERT_EVENT_ID) is not None
    assert run.results["partner_center"].new == 7  # every event of the scenario
    rows = quarantined(rt.store.table_client(ALERTS_TABLE))
    assert sorted(r["raw"] for r in rows) == ['"not an event"', "42"]
    assert all("not a JSON object" in r["reason"] for r in rows)
