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
from shared.jobs import RESPOND_BATCH_KIND, respond_jobs_of
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

    def messages(self) -> list[dict[str, Any]]:
        """Every message taken off the queue, as sent (a batch, or one job)."""
        out = []
        while True:
            batch = list(self.client.receive_messages(messages_per_page=32, visibility_timeout=60))
            if not batch:
                break
            for m in batch:
                out.append(json.loads(m.content))
                self.client.delete_message(m)
        return out

    def jobs(self) -> list[dict[str, Any]]:
        """The alert jobs of every message taken off the queue (batches opened), in order."""
        return [job.to_json() for document in self.messages() for job in respond_jobs_of(document)]


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
    # ... and one message per transaction, carrying its 40 jobs.
    messages = queue.messages()
    assert result.messages == len(messages) == 3
    assert {m["kind"] for m in messages} == {RESPOND_BATCH_KIND} and [len(m["alerts"]) for m in messages] == [40] * 3
    jobs = [job for m in messages for job in m["alerts"]]
    assert len(jobs) == 120 and {j["version"] for j in jobs} == {1}
    assert result.round_trips == result.queries + result.transactions + 3
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
    # Two customers: two transactions, so two batch messages; the put of one fails.
    records = [record(i, CUSTOMERS[0]) for i in range(3)] + [record(i, CUSTOMERS[1]) for i in range(2)]
    queue.fail_next = 1
    with pytest.raises(ConnectionError):
        sync(table, queue).run([ListSource(records)])
    first_jobs = queue.jobs()
    assert len(first_jobs) in (2, 3)  # committed; one batch's put failed (the "crash"), the other went
    lost = 5 - len(first_jobs)
    handle(table, first_jobs)  # the respond side handles what it received
    soon = sync(table, queue).run([ListSource(records)])
    assert (soon.unchanged, soon.enqueued, soon.redelivered) == (5, 0, 0)  # not yet: maybe in flight
    later = datetime.now(UTC) + REDELIVER_AFTER + timedelta(seconds=1)
    recovered = sync(table, queue, now=later).run([ListSource(records)])
    assert recovered.redelivered == lost  # only the jobs that never reached the queue
    resent = queue.messages()  # each alone, in the single shape its row stores
    assert len(resent) == lost and all("alerts" not in m for m in resent)
    all_jobs = first_jobs + resent
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


def test_the_redelivery_window_is_the_hosts_function_timeout(env: tuple[TableClient, Queue],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A job whose every delivery died with its worker goes to the poison queue without running, and
    nobody marks it: the sync sends it again once no invocation can still hold it (one function
    timeout), here shortened by the app setting the fault campaign uses."""
    from shared.intake.jobs import redelivery_window
    from shared.response import jobs

    jobs._host_queues_and_timeout.cache_clear()
    try:
        assert redelivery_window() == REDELIVER_AFTER == timedelta(minutes=10)  # host.json functionTimeout
        monkeypatch.setenv("AzureFunctionsJobHost__functionTimeout", "00:00:20")
        jobs._host_queues_and_timeout.cache_clear()
        window = redelivery_window()
    finally:
        jobs._host_queues_and_timeout.cache_clear()
    assert window == timedelta(seconds=20)
    table, queue = env
    sync(table, queue).run([ListSource([record(1, CUSTOMERS[0])])])
    [job] = queue.jobs()  # and then lost to the poison queue, unmarked
    soon = datetime.now(UTC) + timedelta(seconds=10)
    assert AlertSync(table=table, queue=queue, respond_queue="alerts-respond", clock=lambda: soon,
                     redeliver_after=window).run([ListSource([record(1, CUSTOMERS[0])])]).redelivered == 0
    later = datetime.now(UTC) + timedelta(seconds=21)
    assert AlertSync(table=table, queue=queue, respond_queue="alerts-respond", clock=lambda: later,
                     redeliver_after=window).run([ListSource([record(1, CUSTOMERS[0])])]).redelivered == 1
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


# --- odd data: every value storable, what is not is quarantined (issue 10, item 1) ---------------


def test_hit_counts_beyond_32_and_64_bits_do_not_stop_the_page(env: tuple[TableClient, Queue]) -> None:
    table, queue = env
    c = CUSTOMERS[0]
    records = [record(1, c), record(2, c, hitCount="3000000000"), record(3, c, hitCount="1" * 30),
               record(4, c, hitCount=2**70), record(5, c)]
    result = sync(table, queue).run([ListSource(records)])
    assert (result.new, result.quarantined) == (5, 0)
    rows = {r["alert_id"].split("_")[-1]: r for r in alert_rows(table)}
    assert rows["vm2"]["hit_count"].value == 3_000_000_000  # Edm.Int64 as the SDK reads it
    assert rows["vm3"]["hit_count"] == "1" * 30 and rows["vm4"]["hit_count"] == str(2**70)
    assert len(queue.jobs()) == 5
    # Unchanged next time (the index reads the big numbers back), and doubling still counts.
    again = sync(table, queue).run([ListSource([*records[:1], record(2, c, hitCount="6000000000"), *records[2:]])])
    assert (again.unchanged, again.material) == (4, 1)


def test_odd_keys_and_oversized_strings_are_stored(env: tuple[TableClient, Queue]) -> None:
    table, queue = env
    odd = record(1, CUSTOMERS[0], eventId="a/b\\c#d?e\x01f~" + "z" * 2000, description="d" * 200_000,
                 displayName="\U0001F600" * 40_000, customerTenantId="Tenant/With#Odd?Chars",
                 additionalDetails={f"k{i}": "v" * 1000 for i in range(200)},
                 affectedResources=[{"azureResourceId": f"/subscriptions/x/vm{i}" + "r" * 200} for i in range(500)])
    result = sync(table, queue).run([ListSource([odd, record(2, CUSTOMERS[0])])])
    assert (result.new, result.quarantined) == (2, 0)
    assert len(alert_rows(table)) == 2
    [job] = [j for j in queue.jobs() if "vm" not in j["alert_key"][-4:]]
    stored = table.get_entity(job["partition"], job["row"])
    assert stored["alert_id"].startswith("a/b\\c#d?e\x01f~")
    again = sync(table, queue).run([ListSource([odd, record(2, CUSTOMERS[0])])])
    assert again.unchanged == 2


class RefusingTable:
    """The real Azurite table, except that writes of one RowKey are sent with a property the
    service refuses (as an unforeseen value would be): the store's real error comes back."""

    def __init__(self, table: TableClient, refuse_row_containing: str) -> None:
        self._table = table
        self._refuse = refuse_row_containing

    def __getattr__(self, name: str) -> Any:
        return getattr(self._table, name)

    def submit_transaction(self, operations: Any, **kwargs: Any) -> Any:
        ops = [(op[0], {**op[1], "bad": b"x" * 70_000}, *op[2:]) if self._refuse in op[1]["RowKey"] else op
               for op in operations]  # the refused one carries a binary over the 64 KiB cap
        return self._table.submit_transaction(ops, **kwargs)


def test_a_record_the_store_refuses_is_quarantined_and_the_rest_are_stored(env: tuple[TableClient, Queue]) -> None:
    table, queue = env
    c = CUSTOMERS[0]
    records = [record(i, c) for i in range(6)]
    bad = {"eventType": "x", "customerTenantId": c}  # no event id: cannot become an alert
    result = AlertSync(table=RefusingTable(table, "_vm3"), queue=queue, respond_queue="alerts-respond").run(
        [ListSource([*records, bad])])
    assert (result.new, result.quarantined, result.rejected) == (5, 2, 1)
    assert sorted(r["alert_id"][-3:] for r in alert_rows(table)) == ["vm0", "vm1", "vm2", "vm4", "vm5"]
    assert len(queue.jobs()) == 5
    from shared.intake.sync import quarantined

    listed = {q["id"]: q for q in quarantined(table)}
    assert set(listed) >= {records[3]["eventId"]}
    assert "event id" in " ".join(q["reason"] for q in listed.values())
    assert json.loads(listed[records[3]["eventId"]]["raw"])["eventId"] == records[3]["eventId"]


# --- a lost job is re-sent while the alert keeps changing (item 3) -------------------------------


def test_a_lost_job_is_resent_even_when_the_alert_changes_on_every_poll(env: tuple[TableClient, Queue]) -> None:
    table, queue = env
    c = CUSTOMERS[0]
    start = datetime.now(UTC)
    queue.fail_next = 1
    with pytest.raises(ConnectionError):
        sync(table, queue, now=start).run([ListSource([record(1, c, lastObserved="2026-11-20T10:00:00")])])
    assert queue.jobs() == []  # committed, but the job was lost
    for minute in range(1, 13):
        when = start + timedelta(minutes=minute)
        seen = f"2026-11-20T10:{minute:02d}:00"
        sync(table, queue, now=when).run([ListSource([record(1, c, lastObserved=seen)])])
    jobs = queue.jobs()
    assert [(j["alert_key"], j["version"]) for j in jobs] == [(f"partner_center:{record(1, c)['eventId']}", 1)]


# --- hit count doubling is measured against the answered version (item 4) -----------------------


def test_hit_count_doubling_is_measured_against_the_version_last_answered(env: tuple[TableClient, Queue]) -> None:
    table, queue = env
    c = CUSTOMERS[0]
    versions = []
    for hits in (10, 15, 19, 25, 40, 49, 60, 100, 900):
        sync(table, queue).run([ListSource([record(1, c, hitCount=str(hits))])])
        versions += [(j["version"], hits) for j in queue.jobs()]
    assert versions == [(1, 10), (2, 25), (3, 60), (4, 900)]
