"""Values Table Storage cannot hold as given are made storable before they reach a write."""

from __future__ import annotations

from shared import names
from shared.storage.tables import (
    MAX_ENTITY_BYTES,
    MAX_STRING_UNITS,
    TableStore,
    entity_size,
    storable,
)

TABLE = names.LEDGER_TABLE


def test_integers_beyond_32_bits_round_trip_as_numbers_and_beyond_64_bits_as_text(store: TableStore) -> None:
    big, huge = 3_000_000_000, 10**30
    store.upsert(TABLE, {"PartitionKey": "p", "RowKey": "r", "big": big, "neg": -(2**40), "huge": huge, "small": 7})
    stored = store.get(TABLE, "p", "r")
    assert stored is not None
    assert (stored["big"], stored["neg"], stored["small"]) == (big, -(2**40), 7)
    assert stored["huge"] == str(huge)
    # Read back and written again (read-modify-write) stays storable.
    store.update_with_retry(TABLE, "p", "r", lambda e: {**e, "big": e["big"] + 1})
    again = store.get(TABLE, "p", "r")
    assert again is not None and again["big"] == big + 1


def test_oversized_strings_are_cut_within_the_property_and_entity_limits(store: TableStore) -> None:
    entity = {"PartitionKey": "p", "RowKey": "big", "one": "x" * 100_000, "emoji": "\U0001F600" * 40_000,
              **{f"c{i}": "y" * 32_000 for i in range(40)}}
    fitted = storable(entity)
    assert entity_size(fitted) <= MAX_ENTITY_BYTES
    for value in fitted.values():
        assert not isinstance(value, str) or len(value.encode("utf-16-le")) // 2 <= MAX_STRING_UNITS
    store.upsert(TABLE, entity)  # the store makes it storable itself
    stored = store.get(TABLE, "p", "big")
    assert stored is not None and stored["one"].startswith("x" * 1000)
