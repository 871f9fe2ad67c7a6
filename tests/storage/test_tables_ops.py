"""TableStore reads, claims, ETag updates, deletes and paging against Azurite."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from azure.data.tables import TableServiceClient

from devhost.azurite import DEV_KEY, connection_string, free_port
from shared import names
from shared.settings import Settings
from shared.storage.clients import table_service
from shared.storage.errors import StorageUnreachable
from shared.storage.tables import ConcurrencyConflict, Entity, TableStore, etag_of

TABLE = names.LEDGER_TABLE


def run_threads(*targets: Callable[[], None]) -> list[BaseException]:
    """Run the targets at once; return what they raised."""
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(targets))

    def wrapped(target: Callable[[], None]) -> None:
        try:
            barrier.wait()
            target()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=wrapped, args=(t,)) for t in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def test_tables_are_created_on_first_use_with_the_prefix(store: TableStore, settings: Settings) -> None:
    assert store.get(names.ALERTS_TABLE, "p", "r") is None

    listed = {t.name for t in table_service(settings.storage).list_tables()}
    assert settings.table_name_prefix + names.ALERTS_TABLE in listed
    assert settings.table_name_prefix + names.CONTACTS_TABLE not in listed  # not used, not created


def test_upsert_and_get_round_trip(store: TableStore) -> None:
    etag = store.upsert(TABLE, {"PartitionKey": "t1", "RowKey": "a", "state": "new", "attempts": 0})

    entity = store.get(TABLE, "t1", "a")
    assert entity is not None
    assert (entity["state"], entity["attempts"]) == ("new", 0)
    assert etag_of(entity) == etag
    assert store.get(TABLE, "t1", "missing") is None


def test_insert_once_claims_only_once(store: TableStore) -> None:
    assert store.insert_once(TABLE, {"PartitionKey": "alert-1", "RowKey": "stop_vm", "actor": "first"}) is True
    assert store.insert_once(TABLE, {"PartitionKey": "alert-1", "RowKey": "stop_vm", "actor": "second"}) is False

    entity = store.get(TABLE, "alert-1", "stop_vm")
    assert entity is not None
    assert entity["actor"] == "first"


def test_insert_once_has_one_winner_among_concurrent_claimers(store: TableStore) -> None:
    wins: list[int] = []

    def claim(n: int) -> Callable[[], None]:
        def run() -> None:
            if store.insert_once(TABLE, {"PartitionKey": "alert-2", "RowKey": "notify", "worker": n}):
                wins.append(n)
        return run

    assert run_threads(*(claim(n) for n in range(6))) == []
    assert len(wins) == 1
    stored = store.get(TABLE, "alert-2", "notify")
    assert stored is not None
    assert stored["worker"] == wins[0]


def test_update_with_a_stale_etag_is_a_conflict(store: TableStore) -> None:
    store.upsert(TABLE, {"PartitionKey": "t1", "RowKey": "a", "state": "new"})
    read = store.get(TABLE, "t1", "a")
    assert read is not None
    new_etag = store.update_with_etag(TABLE, {"PartitionKey": "t1", "RowKey": "a", "state": "running"}, etag_of(read))

    with pytest.raises(ConcurrencyConflict) as caught:
        store.update_with_etag(TABLE, {"PartitionKey": "t1", "RowKey": "a", "state": "lost"}, etag_of(read))

    assert (caught.value.table, caught.value.partition_key, caught.value.row_key) == (
        store.table_name(TABLE), "t1", "a")
    assert "re-read" in str(caught.value)
    current = store.get(TABLE, "t1", "a")
    assert current is not None
    assert current["state"] == "running"
    assert etag_of(current) == new_etag


def test_update_of_a_deleted_entity_is_a_conflict(store: TableStore) -> None:
    store.upsert(TABLE, {"PartitionKey": "t1", "RowKey": "a"})
    read = store.get(TABLE, "t1", "a")
    assert read is not None
    store.delete(TABLE, "t1", "a")

    with pytest.raises(ConcurrencyConflict, match="deleted"):
        store.update_with_etag(TABLE, {"PartitionKey": "t1", "RowKey": "a", "x": 1}, etag_of(read))
    assert store.get(TABLE, "t1", "a") is None


def test_concurrent_increments_with_retry_are_exact(store: TableStore) -> None:
    per_writer = 15

    def increment(entity: Entity) -> Entity:
        entity["count"] = entity.get("count", 0) + 1
        return entity

    def writer() -> None:
        for _ in range(per_writer):
            # Generous attempts: with two writers on one row, losing many times in a row is possible.
            store.update_with_retry(TABLE, "counters", "c", increment, attempts=40)

    assert run_threads(writer, writer) == []
    counter = store.get(TABLE, "counters", "c")
    assert counter is not None
    assert counter["count"] == 2 * per_writer


def test_update_with_retry_gives_up_with_a_conflict(store: TableStore) -> None:
    store.upsert(TABLE, {"PartitionKey": "t1", "RowKey": "hot", "n": 0})
    calls = 0

    def mutate_while_someone_else_writes(entity: Entity) -> Entity:
        nonlocal calls
        calls += 1
        store.upsert(TABLE, {"PartitionKey": "t1", "RowKey": "hot", "n": 100 + calls})  # the other writer
        return {**entity, "n": -1}

    with pytest.raises(ConcurrencyConflict, match="after 3 attempts"):
        store.update_with_retry(TABLE, "t1", "hot", mutate_while_someone_else_writes, attempts=3)
    assert calls == 3
    stored = store.get(TABLE, "t1", "hot")
    assert stored is not None
    assert stored["n"] == 103


def test_update_with_retry_creates_a_missing_entity_and_can_decline(store: TableStore) -> None:
    created = store.update_with_retry(TABLE, "t1", "new", lambda e: {**e, "state": "claimed"})
    assert created == {"PartitionKey": "t1", "RowKey": "new", "state": "claimed"}

    unchanged = store.update_with_retry(TABLE, "t1", "new", lambda e: None)
    assert unchanged is not None
    assert unchanged["state"] == "claimed"
    assert store.update_with_retry(TABLE, "t1", "never", lambda e: None) is None
    assert store.get(TABLE, "t1", "never") is None


def test_delete_honours_the_etag(store: TableStore) -> None:
    store.upsert(TABLE, {"PartitionKey": "t1", "RowKey": "a", "v": 1})
    stale = store.get(TABLE, "t1", "a")
    assert stale is not None
    store.upsert(TABLE, {"PartitionKey": "t1", "RowKey": "a", "v": 2})

    with pytest.raises(ConcurrencyConflict, match="not deleted"):
        store.delete(TABLE, "t1", "a", etag=etag_of(stale))
    current = store.get(TABLE, "t1", "a")
    assert current is not None

    store.delete(TABLE, "t1", "a", etag=etag_of(current))
    assert store.get(TABLE, "t1", "a") is None
    store.delete(TABLE, "t1", "a")  # deleting what is not there is not an error


def test_paging_over_more_than_1000_entities_resumes_from_a_token(store: TableStore, settings: Settings) -> None:
    store.upsert_many(TABLE, [{"PartitionKey": "many", "RowKey": f"{i:05d}", "i": i} for i in range(1050)])
    store.upsert(TABLE, {"PartitionKey": "other", "RowKey": "x"})

    pages = list(store.query(TABLE, "PartitionKey eq @pk", {"pk": "many"}, select=["RowKey", "i"], page_size=100))

    assert [len(p.entities) for p in pages] == [100] * 10 + [50]
    assert [e["i"] for p in pages for e in p.entities] == list(range(1050))
    assert pages[-1].continuation_token is None
    assert all(p.continuation_token for p in pages[:-1])

    # Another process (a new store) resumes after page 3 with only the token.
    resumed = TableStore(settings).query(TABLE, "PartitionKey eq @pk", {"pk": "many"}, page_size=100,
                                         continuation_token=pages[2].continuation_token)
    assert [e["i"] for p in resumed for e in p.entities] == list(range(300, 1050))


def test_query_without_filter_lists_everything(store: TableStore) -> None:
    store.upsert_many(TABLE, [{"PartitionKey": pk, "RowKey": "r"} for pk in ("a", "b", "c")])

    pages = list(store.query(TABLE, page_size=2))

    assert [[e["PartitionKey"] for e in p.entities] for p in pages] == [["a", "b"], ["c"]]


def test_a_foreign_continuation_token_is_refused(store: TableStore) -> None:
    with pytest.raises(ValueError, match="continuation_token"):
        next(store.query(TABLE, continuation_token="not-a-token"))


def test_unreachable_storage_says_what_to_do(settings: Settings) -> None:
    port = free_port()  # nothing listens here
    service = TableServiceClient.from_connection_string(connection_string(port, port, port), retry_total=0)
    store = TableStore(settings, service=service)

    with pytest.raises(StorageUnreachable) as caught:
        store.get(TABLE, "p", "r")

    message = str(caught.value)
    assert message == (f"cannot reach Table Storage at http://127.0.0.1:{port}/devstoreaccount1: "
                       "is Azurite running? (make run starts it)")
    assert DEV_KEY not in message


def test_a_prefix_that_makes_an_invalid_table_name_is_explained(store: TableStore) -> None:
    with pytest.raises(ValueError, match="not valid"):
        store.get("bad-name", "p", "r")
