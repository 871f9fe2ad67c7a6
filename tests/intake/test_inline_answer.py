"""A fraud webhook's sync answers the alerts it stored itself; the respond queue is its safety net."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from devhost.azurite import Azurite
from sandbox import ids
from sandbox.core import Sandbox
from sandbox.faults import Fault
from shared.alerts import from_entity
from shared.intake.jobs import IntakeRuntime, handle_sync_message, run_sync
from shared.intake.sync import SyncScope
from shared.jobs import respond_jobs_of
from shared.names import RESPOND_QUEUE
from shared.response.ledger import Ledger
from shared.settings import load_settings
from shared.storage.clients import queue_client
from shared.views import find_alert, query_alerts
from tests.conftest import settings_env


def runtime(azurite: Azurite, sandbox: Sandbox, **overrides: str) -> IntakeRuntime:
    rt = IntakeRuntime.from_settings(load_settings(settings_env(azurite, **sandbox.app_settings(), **overrides)))
    rt.queue.count(RESPOND_QUEUE)  # creates it
    queue_client(rt.settings.storage, RESPOND_QUEUE).clear_messages()  # queues are shared by all tests
    return rt


def subscription_alerts(rt: IntakeRuntime) -> list[dict[str, Any]]:
    return [a for a in query_alerts(rt.store) if a["subscription_id"] == ids.SUB_FABRIKAM_PROD]


def webhook_job() -> bytes:
    return json.dumps({"scope": "subscription", "subscription_id": ids.SUB_FABRIKAM_PROD, "source": "partner_center",
                       "trigger": "webhook", "delivery_id": uuid.uuid4().hex * 2}).encode()


def test_a_webhooks_sync_answers_the_alert_itself_and_leaves_nothing_in_the_respond_queue(
        azurite: Azurite, fresh_sandbox: Sandbox) -> None:
    rt = runtime(azurite, fresh_sandbox)

    run = handle_sync_message(webhook_job(), runtime=rt)

    assert run is not None and run.ok and run.totals()["enqueued"] == 3  # the subscription's three alerts
    assert {a["respond_state"] for a in subscription_alerts(rt)} == {"handled"}
    mining = find_alert(rt.store, ids.MINING_ALERT_EVENT_ID)
    assert mining is not None
    rows = Ledger(rt.store).for_alert(from_entity(mining).key)
    assert {"investigate", "stop_resources", "notify"} <= {row.action for row in rows}  # the default policy's
    assert rt.queue.count(RESPOND_QUEUE) == 0  # answered here: the held message is gone, nothing to redo


def test_with_inline_answers_off_the_respond_queue_gets_the_job_at_once(azurite: Azurite,
                                                                         fresh_sandbox: Sandbox) -> None:
    rt = runtime(azurite, fresh_sandbox, RESPOND_INLINE_MAX="0")

    handle_sync_message(webhook_job(), runtime=rt)

    assert {a["respond_state"] for a in subscription_alerts(rt)} == {"pending"}
    assert len(rt.queue.peek(RESPOND_QUEUE)) == 1  # visible now, for the respond queue's trigger


def test_alerts_beyond_the_inline_limit_go_to_the_respond_queue_at_once(azurite: Azurite,
                                                                       fresh_sandbox: Sandbox) -> None:
    rt = runtime(azurite, fresh_sandbox, RESPOND_INLINE_MAX="2")  # the subscription's message holds three

    handle_sync_message(webhook_job(), runtime=rt)

    assert {a["respond_state"] for a in subscription_alerts(rt)} == {"pending"}
    assert len(rt.queue.peek(RESPOND_QUEUE)) == 1  # released now, not after its hold


def test_an_answer_that_fails_here_goes_to_the_respond_queue_to_be_retried(azurite: Azurite,
                                                                            fresh_sandbox: Sandbox) -> None:
    rt = runtime(azurite, fresh_sandbox)
    fresh_sandbox.add_fault(Fault(service="arm", kind="status", status=503, retry_after=0, times=None))

    run = handle_sync_message(webhook_job(), runtime=rt)

    assert run is not None and run.ok  # the sync itself succeeded: its job is done
    pending = [a for a in subscription_alerts(rt) if a["respond_state"] == "pending"]
    assert pending  # the ones the fault kept from an answer: each has its own message on the respond queue
    assert rt.queue.count(RESPOND_QUEUE) == len(pending)  # each alone, visible after the retry delay


def test_a_held_message_nobody_answers_is_delivered_when_its_hold_ends(azurite: Azurite,
                                                                        fresh_sandbox: Sandbox) -> None:
    # The sync's worker dies between storing the alert and answering it: the respond queue still gets the job.
    rt = runtime(azurite, fresh_sandbox)
    from unittest import mock

    with mock.patch("shared.intake.inline.hold_seconds", return_value=2):
        run = run_sync(rt, SyncScope(subscription_id=ids.SUB_FABRIKAM_PROD), trigger="webhook",
                       sources=("partner_center",), hold_respond=True)

    assert len(run.held) == 1 and rt.queue.count(RESPOND_QUEUE) == 1
    assert rt.queue.peek(RESPOND_QUEUE) == []  # held: the sync would answer it
    deadline = time.monotonic() + 15
    while not rt.queue.peek(RESPOND_QUEUE) and time.monotonic() < deadline:
        time.sleep(0.25)
    [message] = rt.queue.peek(RESPOND_QUEUE)
    assert message.json() == run.held[0][1]


def test_a_sync_that_fails_after_sending_held_messages_releases_them_at_once(azurite: Azurite,
                                                                             fresh_sandbox: Sandbox) -> None:
    # Storing the run's record fails after the alerts and their held respond message were written:
    # nobody will answer that message here, so the respond queue must get it now, not a function timeout later.
    rt = runtime(azurite, fresh_sandbox)
    from unittest import mock

    from shared.storage.errors import StorageUnreachable

    with mock.patch("shared.intake.jobs.record_sync", side_effect=StorageUnreachable("Table Storage is down")), \
            mock.patch("shared.intake.inline.hold_seconds", return_value=600):
        try:
            handle_sync_message(webhook_job(), runtime=rt)
        except StorageUnreachable:
            pass
        else:
            raise AssertionError("the sync's failure must reach the queue trigger, which retries the job")

    [message] = rt.queue.peek(RESPOND_QUEUE)  # visible now
    assert {a["respond_state"] for a in subscription_alerts(rt)} == {"pending"}
    assert len(respond_jobs_of(message.json())) == 3  # the subscription's three alerts, for the respond queue
