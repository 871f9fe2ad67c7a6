"""Sync into the alerts table against Azurite: diff, batching, outbox, crash and overlap safety."""

from __future__ import annotations

import copy
import json
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.data.tables import TableClient
from azure.storage.queue import QueueClient

from devhost.azurite import Azurite
from shared.alerts import Source
from shared.intake.sync import REDELIVER_AFTER, AlertSync, SyncScope, job_is_current, mark_respond_state
from shared.settings import load_settings
from shared.storage.clients import queue_service, table_service
from tests.conftest import settings_env

CUSTOMERS = [f"aaaaaaaa-0000-4000-8000-{i:012d}" for i in range(3)]


def record(i: int, customer: str, **changes: Any) -> dict[str, Any]:
    sub = f"bbbbbbbb-0000-4000-8000-{int(customer[-3:]):012d}"
    base = {
        "eventId": f"{sub}_vm{i}", "customerTenantId": customer, "subscriptionId": sub,
        "eventType": "NetworkConnectionsToCryptoMiningPools", "eventStatus": "Active", "severity": "high",
        "hitCount": "10", "eventTime": "2026-11-20T10:00:00",
        "affectedResources": [{"azureResourceId": f"/subscriptions/{sub}/vm{i}", "type": "vm"}],
    }
    base.update(changes)
    return base


class ListSource:
    """An in-memory source for the sync engine (the real ones are tested against the sandbox)."""

    def __init__(self, records: list[dict[str, Any]], page_size: int = 50, name: Source = "partner_center") -> None:
        self.records = records
        self.page_size = page_size
        self.name: Source = name

    def pages(self, scope: SyncScope) -> Iterator[list[dict[str, Any]]]:
        sub = scope.subscription_id
        rows = [r for r in self.records if not sub or r.get("subscriptionId") == sub]
        for i in range(0, len(rows), self.page_size):
            yield copy.deepcopy(rows[i : i + self.page_size])


class Queue:
    """Real Azurite queue behind the JobQueue protocol; can be told to fail the next sends."""

    def __init__(self, client: QueueClient) -> None:
        self.client = client
        self.fail_next = 0

    def send_json(self, queue: str, document: dict[str, Any]) -> None:
        if self.fail_next:
            self.fail_next -= 1
            raise ConnectionError("injected: the process died before the enqueue")
        self.client.send_message(json.dumps(document).encode())

    def jobs(self) -> list[dict[str, Any]]:
        out = []
        while True:
            batch = list(self.client.receive_messages(messages_per_page=32, visibility_timeout=60))
            if not batch:
                break
            for m in batch:
                out.append(json.loads(m.content))
                self.client.delete_message(m)
        return out


@pytest.fixture
def env(azurite: Azurite) -> Iterator[tuple[TableClient, Queue]]:
    settings = load_settings(settings_env(azurite))
    name = "alerts" + uuid.uuid4().hex[:10]
    tables = table_service(settings.storage)
    table = tables.create_table(name)
    qname = "respond" + uuid.uuid4().hex[:10]
    qc = queue_service(settings.storage).get_queue_client(qname)
    qc.create_queue()
    yield table, Queue(qc)
    tables.delete_table(name)
    qc.delete_queue()


def sync(table: TableClient, queue: Queue, now: datetime | None = None) -> AlertSync:
    return AlertSync(table=table, queue=queue, respond_queue="alerts-respond",
                     clock=(lambda: now) if now else (lambda: datetime.now(UTC)))


def alert_rows(table: TableClient) -> list[dict[str, Any]]:
    return list(table.query_entities("kind eq 'alert'"))


def test_first_sync_stores_each_alert_once_and_enqueues_one_job_each(env: tuple[TableClient, Queue]) -> None:
    table, queue = env
    records = [record(i, c) for c in CUSTOMERS for i in range(40)]
    result = sync(table, queue).run([ListSource(records)])
    assert (result.fetched, result.new, result.material, result.enqueued) == (120, 120, 120, 120)
    # 40 alerts per customer: one transaction per customer.
    assert result.transactions == 3
    assert len(alert_rows(table)) == 120
    jobs = queue.jobs()
    assert len(jobs) == 120 and {j["version"] for j in jobs} == {1}
    assert len({j["alert_key"] for j in jobs}) == 120


def test_second_sync_with_nothing_changed_writes_and_enqueues_nothing(env: tuple[TableClient, Queue]) -> None:
    table, queue = env
    records = [record(i, c) for c in CUSTOMERS for i in range(10)]
    sync(table, queue).run([ListSource(records)])
    queue.jobs()
    again = sync(table, queue).run([ListSource(records)])
    assert (again.unchanged, again.transactions, again.enqueued) == (30, 0, 0)
    assert queue.jobs() == []


def test_material_change_bumps_the_version_and_cosmetic_change_does_not(env: tuple[TableClient, Queue]) -> None:
    table, queue = env
    c = CUSTOMERS[0]
    sync(table, queue).run([ListSource([record(1, c), record(2, c), record(3, c)])])
    queue.jobs()
    changed = [record(1, c, eventStatus="Investigating"), record(2, c, description="typo fixed"),
               record(3, c, hitCount="25")]
    result = sync(table, queue).run([ListSource(changed)])
    assert (result.updated, result.material, result.enqueued) == (3, 2, 2)
    jobs = sorted(queue.jobs(), key=lambda j: j["alert_key"])
    assert [(j["alert_key"].split("_")[-1], j["version"]) for j in jobs] == [("vm1", 2), ("vm3", 2)]
    rows = {r["alert_id"].split("_")[-1]: r for r in alert_rows(table)}
    assert rows["vm1"]["status"] == "investigating" and rows["vm2"]["description"] == "typo fixed"
    assert rows["vm2"]["version"] == 1


def test_a_rejected_record_is_counted_and_the_rest_of_the_page_is_stored(env: tuple[TableClient, Queue]) -> None:
    table, queue = env
    bad = record(9, CUSTOMERS[0])
    del bad["customerTenantId"]
    result = sync(table, queue).run([ListSource([record(1, CUSTOMERS[0]), bad, record(2, CUSTOMERS[0])])])
    assert (result.rejected, result.new) == (1, 2)
    assert "customer tenant" in result.errors[0]


def test_an_alert_first_seen_resolved_is_stored_without_a_job(env: tuple[TableClient, Queue]) -> None:
    table, queue = env
    result = sync(table, queue).run([ListSource([record(1, CUSTOMERS[0], eventStatus="Resolved")])])
    assert (result.new, result.enqueued) == (1, 0)


def test_crash_between_commit_and_enqueue_loses_nothing_and_sends_no_second_job(
    env: tuple[TableClient, Queue],
) -> None:
    table, queue = env
    records = [record(i, CUSTOMERS[0]) for i in range(5)]
    queue.fail_next = 1
    with pytest.raises(ConnectionError):
        sync(table, queue).run([ListSource(records)])
    first_jobs = queue.jobs()
    assert len(first_jobs) == 4  # committed; one put failed (the "crash"), the others went
    handle(table, first_jobs)  # the respond side handles what it received
    soon = sync(table, queue).run([ListSource(records)])
    assert (soon.unchanged, soon.enqueued, soon.redelivered) == (5, 0, 0)  # not yet: maybe in flight
    later = datetime.now(UTC) + REDELIVER_AFTER + timedelta(seconds=1)
    recovered = sync(table, queue, now=later).run([ListSource(records)])
    assert recovered.redelivered == 1  # only the job that never reached the queue
    all_jobs = first_jobs + queue.jobs()
    assert sorted(j["alert_key"] for j in all_jobs) == sorted(f"partner_center:{r['eventId']}" for r in records)
    again = sync(table, queue, now=later + timedelta(seconds=1)).run([ListSource(records)])
    assert again.redelivered == 0  # re-sent jobs wait another REDELIVER_AFTER


def test_a_job_unhandled_past_the_redelivery_window_is_sent_again_once(env: tuple[TableClient, Queue]) -> None:
    table, queue = env
    sync(table, queue).run([ListSource([record(1, CUSTOMERS[0])])])
    [job] = queue.jobs()
    later = datetime.now(UTC) + REDELIVER_AFTER + timedelta(seconds=1)
    runs = [sync(table, queue, now=later).run([ListSource([record(1, CUSTOMERS[0])])]) for _ in range(2)]
    assert [r.redelivered for r in runs] == [1, 0]
    assert queue.jobs() == [job]


def handle(table: TableClient, jobs: list[dict[str, Any]]) -> None:
    """What the respond side does when it is done with a job."""
    for job in jobs:
        entity = table.get_entity(job["partition"], job["row"])
        assert job_is_current(entity, job["version"])
        assert mark_respond_state(table, entity, job["version"], "handled")


def test_overlapping_runs_never_enqueue_the_same_version_twice(env: tuple[TableClient, Queue]) -> None:
    table, queue = env
    records = [record(i, c) for c in CUSTOMERS for i in range(30)]
    results = []
    barrier = threading.Barrier(2)

    def run() -> None:
        barrier.wait()
        results.append(sync(table, queue).run([ListSource(records, page_size=7)]))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    jobs = queue.jobs()
    keys = [(j["alert_key"], j["version"]) for j in jobs]
    assert len(keys) == len(set(keys)) == 90
    assert sum(r.enqueued for r in results) == 90
    assert len(alert_rows(table)) == 90


def test_subscription_scope_touches_only_that_subscription(env: tuple[TableClient, Queue]) -> None:
    table, queue = env
    records = [record(i, c) for c in CUSTOMERS for i in range(5)]
    sub = records[0]["subscriptionId"]
    result = sync(table, queue).run([ListSource(records)], SyncScope(subscription_id=sub))
    assert result.new == 5
    assert {r["subscription_id"] for r in alert_rows(table)} == {sub}
