"""upsert_many against Azurite: transactions by partition, the 100-entity and 4 MiB caps, duplicates."""

from __future__ import annotations

import pytest

from shared.settings import Settings
from shared.storage.tables import MAX_TRANSACTION_BYTES, BatchWriteError, TableStore, estimate_size

TABLE = "alerts"


def big_entities(count: int) -> list[dict[str, object]]:
    """Entities of about 800 KB on the wire each (ten 60 KB binary properties, base64-encoded)."""
    return [
        {"PartitionKey": "big", "RowKey": f"r{i:03d}", **{f"blob{j}": bytes([i, j]) * 30_000 for j in range(10)}}
        for i in range(count)
    ]


def test_250_entities_over_3_partitions_take_5_transactions(store: TableStore) -> None:
    sizes = {"tenant-a": 120, "tenant-b": 120, "tenant-c": 10}  # 2 + 2 + 1 transactions of <= 100
    entities = [
        {"PartitionKey": pk, "RowKey": f"{i:04d}", "n": i, "label": f"{pk}/{i}"}
        for pk, n in sizes.items() for i in range(n)
    ]

    result = store.upsert_many(TABLE, entities)

    assert (result.entities, result.transactions, result.round_trips) == (250, 5, 5)
    for pk, n in sizes.items():
        stored = list(store.list_partition(TABLE, pk))
        assert [e["n"] for e in stored] == list(range(n))
        assert all(e["label"] == f"{pk}/{e['n']}" for e in stored)


def test_large_entities_are_split_below_the_4_mib_cap(store: TableStore) -> None:
    entities = big_entities(12)
    assert sum(estimate_size(e) for e in entities) > 2 * MAX_TRANSACTION_BYTES  # one transaction would be refused

    result = store.upsert_many(TABLE, entities)

    assert result.entities == 12
    assert result.transactions >= 3
    assert result.round_trips == result.transactions  # the estimate held: the service refused nothing
    stored = {e["RowKey"]: e for e in store.list_partition(TABLE, "big")}
    assert sorted(stored) == [e["RowKey"] for e in entities]
    for entity in entities:
        assert stored[str(entity["RowKey"])]["blob7"] == entity["blob7"]


def test_a_transaction_refused_as_too_large_is_split_and_sent_again(settings: Settings) -> None:
    # A budget far above the cap makes the first transaction too large; Azurite answers 413.
    store = TableStore(settings, transaction_budget=64 * MAX_TRANSACTION_BYTES)
    entities = big_entities(10)

    result = store.upsert_many(TABLE, entities)

    assert result.entities == 10
    assert result.round_trips > result.transactions >= 2
    assert len(list(store.list_partition(TABLE, "big", select=["RowKey"]))) == 10


def test_duplicate_keys_are_merged_before_batching(store: TableStore) -> None:
    store.upsert(TABLE, {"PartitionKey": "p", "RowKey": "a", "kept": "stored"})
    entities = [
        {"PartitionKey": "p", "RowKey": "a", "x": 1, "y": 1},
        {"PartitionKey": "p", "RowKey": "b", "x": 5},
        {"PartitionKey": "p", "RowKey": "a", "y": 2},
    ]

    result = store.upsert_many(TABLE, entities, mode="merge")

    assert (result.entities, result.transactions) == (2, 1)
    a = store.get(TABLE, "p", "a")
    assert a is not None
    assert (a["kept"], a["x"], a["y"]) == ("stored", 1, 2)


def test_duplicate_keys_in_replace_mode_keep_the_last(store: TableStore) -> None:
    store.upsert(TABLE, {"PartitionKey": "p", "RowKey": "a", "kept": "stored"})
    entities = [{"PartitionKey": "p", "RowKey": "a", "x": 1}, {"PartitionKey": "p", "RowKey": "a", "y": 2}]

    result = store.upsert_many(TABLE, entities, mode="replace")

    assert result.entities == 1
    a = store.get(TABLE, "p", "a")
    assert a is not None
    assert dict(a) == {"PartitionKey": "p", "RowKey": "a", "y": 2}


def test_a_failing_transaction_names_the_entity_but_not_its_values(store: TableStore) -> None:
    # 71,400 bytes: over the 64 KiB binary limit (a long string would be cut to fit; a blob is not)
    secret = b"TOP-SECRET-VALUE-" * 4_200
    entities: list[dict[str, object]] = [{"PartitionKey": "ok", "RowKey": "0", "v": 0}]
    entities += [{"PartitionKey": "bad", "RowKey": f"r{i}", "v": i} for i in range(5)]
    entities[4]["note"] = secret  # RowKey r3, fourth entity of partition "bad"

    with pytest.raises(BatchWriteError) as caught:
        store.upsert_many(TABLE, entities)

    error = caught.value
    message = str(error)
    assert "TOP-SECRET" not in message
    assert store.table_name(TABLE) in message
    assert "'bad'" in message and "'r3'" in message and "entity 3 of the transaction" in message
    assert "input position 4" in message
    assert (error.partition_key, error.row_key, error.input_index) == ("bad", "r3", 4)
    assert error.written.entities == 1  # partition "ok" went first and stays written
    assert store.get(TABLE, "ok", "0") is not None
    assert list(store.list_partition(TABLE, "bad")) == []  # the failed transaction wrote nothing


def test_keys_that_table_storage_forbids_are_refused_before_sending(store: TableStore) -> None:
    with pytest.raises(ValueError, match=r"safe_key.*input position 1\); nothing was written"):
        store.upsert_many(TABLE, [{"PartitionKey": "p", "RowKey": "ok"}, {"PartitionKey": "p", "RowKey": "a/b"}])
    assert store.get(TABLE, "p", "ok") is None
    with pytest.raises(ValueError, match="PartitionKey and a RowKey"):
        store.upsert_many(TABLE, [{"PartitionKey": "p"}])


def test_nothing_to_write_sends_nothing(store: TableStore) -> None:
    result = store.upsert_many(TABLE, [])
    assert (result.entities, result.transactions, result.round_trips) == (0, 0, 0)
