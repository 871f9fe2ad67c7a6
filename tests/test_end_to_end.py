"""The whole system through the dev host, as `make run` runs it: the sandbox raises a signed
crypto-mining webhook; the app verifies it, syncs the subscription, stores the alert once and
responds by policy with no human; a second webhook for the same subscription changes nothing."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from azure.core.exceptions import ResourceExistsError

from devhost.azurite import Azurite
from devhost.host import DevHost
from sandbox import ids
from sandbox.core import Sandbox
from sandbox.webhooks import Registration
from shared.alerts import row_key
from shared.names import LEDGER_TABLE, RESPOND_QUEUE, SYNC_QUEUE
from shared.settings import load_settings
from shared.storage.clients import queue_client
from shared.storage.tables import TableStore
from shared.views import find_alert
from tests.conftest import REPO_ROOT, settings_env

QUICK_QUEUES = {"extensions": {"queues": {"batchSize": 4, "newBatchThreshold": 2, "maxDequeueCount": 5,
                                          "visibilityTimeout": "00:00:01", "maxPollingInterval": "00:00:00.2"}}}
FRAUD_EVENT = "azure-fraud-event-detected"


def wait_for(check: Callable[[], Any], *, timeout: float = 60.0, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def stack(azurite: Azurite, fresh_sandbox: Sandbox) -> Iterator[tuple[DevHost, TableStore, Sandbox]]:
    never = "0 0 0 1 1 *"  # timers that do not fire during the test
    env = settings_env(azurite, **fresh_sandbox.app_settings(), POLL_SCHEDULE=never, DIGEST_SCHEDULE=never,
                       DETECT_SCHEDULE=never,
                       FRAUD_RESPONDER_LOCAL_SETTINGS=str(REPO_ROOT / "does-not-exist.json"))
    settings = load_settings(env)
    for queue in (SYNC_QUEUE, RESPOND_QUEUE):  # queues are shared by every test on this Azurite
        client = queue_client(settings.storage, queue)
        with contextlib.suppress(ResourceExistsError):
            client.create_queue()
        client.clear_messages()
    with DevHost(environ=env, host_json=QUICK_QUEUES, http_port=0) as host:
        yield host, TableStore(settings), fresh_sandbox


def ledger(store: TableStore, alert_key: str) -> list[dict[str, Any]]:
    return [dict(e) for e in store.list_partition(LEDGER_TABLE, row_key(alert_key))]


def test_signed_webhook_to_stored_alert_to_policy_response(stack: tuple[DevHost, TableStore, Sandbox]) -> None:
    host, store, sandbox = stack
    pc: Any = sandbox.services["partner_center"]
    webhook_key = host.keys.function_key("receive_webhook")  # the webhook's own key, as registered in Azure
    pc.registration = Registration(f"{host.base_url}/api/webhooks/partner-center?code={webhook_key}",
                                   [FRAUD_EVENT, "test-created"])

    delivery = pc.raise_fraud_event(ids.SUB_FABRIKAM_PROD)
    assert delivery.wait(30)
    assert [a.response_code for a in delivery.attempts] == ["OK"]

    alert = wait_for(lambda: find_alert(store, ids.MINING_ALERT_EVENT_ID), what="the synced mining alert")
    key = f"partner_center:{ids.MINING_ALERT_EVENT_ID}"
    rows = wait_for(lambda: [r for r in ledger(store, key) if r["action"] == "notify" and r["state"] == "succeeded"]
                    and ledger(store, key), what="the policy's response")
    states = {(r["action"], r["state"]) for r in rows}
    assert ("update_status", "succeeded") in states and ("investigate", "succeeded") in states
    assert sum(1 for r in rows if r["action"] == "stop_resources" and r["state"] == "awaiting-approval") == 2
    assert {"revoke_sessions", "rotate_credentials", "suspend_subscription"} <= {
        r["action"] for r in rows if r["state"] == "awaiting-approval"}
    event = next(e for e in pc.alerts if e["eventId"] == ids.MINING_ALERT_EVENT_ID)
    assert event["eventStatus"] == "Investigating"
    graph: Any = sandbox.services["graph"]
    mail = [m for m in graph.sent_mail() if ids.MINING_ALERT_EVENT_ID in json.dumps(m)]
    assert len(mail) == 1

    # A second webhook for the same subscription: synced again, nothing new, nothing repeated.
    again = pc.raise_fraud_event(ids.SUB_FABRIKAM_PROD)
    assert again.wait(30) and [a.response_code for a in again.attempts] == ["OK"]
    host.invocations.wait_for(lambda i: i.function == "sync_alerts" and i.succeeded, count=2, timeout=60)
    time.sleep(1.0)  # a respond job, had the second sync enqueued one, would have started by now
    stored = find_alert(store, ids.MINING_ALERT_EVENT_ID)
    assert stored is not None and stored["version"] == alert["version"] == 1
    assert {(r["RowKey"], r["state"]) for r in ledger(store, key)} == {(r["RowKey"], r["state"]) for r in rows}
    assert len([m for m in graph.sent_mail() if ids.MINING_ALERT_EVENT_ID in json.dumps(m)]) == 1
