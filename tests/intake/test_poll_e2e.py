"""The poller alone finds the sandbox's alerts: real MSAL, Key Vault, httpx clients and Azurite."""

from __future__ import annotations

import json

from devhost.azurite import Azurite
from sandbox import ids
from sandbox.core import Sandbox
from shared.intake.checkpoints import last_syncs, token_health
from shared.intake.jobs import IntakeRuntime, handle_sync_message, run_poll
from shared.names import RESPOND_QUEUE
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
    assert rt.queue.count(RESPOND_QUEUE) == totals["enqueued"] > 0

    again = run_poll(runtime=rt)
    assert again.totals()["new"] == 0 and again.totals()["enqueued"] == 0
    assert rt.queue.count(RESPOND_QUEUE) == totals["enqueued"]
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
