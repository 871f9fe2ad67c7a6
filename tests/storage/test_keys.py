"""safe_key: any string becomes a valid Table key and comes back unchanged."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.storage.tables import TableStore, restore_key, safe_key

FORBIDDEN = set("/\\#?") | {chr(c) for c in (*range(0x20), *range(0x7F, 0xA0))}
TRICKY = st.lists(st.sampled_from(["/", "\\", "#", "?", "~", "~7E", "%2F", "\x00", "\x1f", "\x7f", "\x9f",
                                    "a", "Z", "é", "日", " "])).map("".join)


@given(st.text() | TRICKY)
def test_safe_key_round_trips_and_leaves_no_forbidden_character(value: str) -> None:
    encoded = safe_key(value)
    assert restore_key(encoded) == value
    assert not FORBIDDEN & set(encoded)


@given(st.text(alphabet=st.characters(blacklist_characters=sorted(FORBIDDEN | {"~"}))))
def test_ordinary_keys_are_unchanged(value: str) -> None:
    assert safe_key(value) == value


@pytest.mark.parametrize("raw", [
    "https://example.com/a?b#c",
    "DOMAIN\\user",
    "tab\there\nnewline",
    "~7E already escaped-looking ~2F",
])
def test_encoded_keys_work_in_table_storage(store: TableStore, raw: str) -> None:
    store.upsert("alerts", {"PartitionKey": safe_key(raw), "RowKey": safe_key(raw), "original": raw})

    entity = store.get("alerts", safe_key(raw), safe_key(raw))

    assert entity is not None
    assert restore_key(entity["RowKey"]) == raw == entity["original"]


def test_an_unencoded_key_is_refused_with_the_fix(store: TableStore) -> None:
    with pytest.raises(ValueError, match=r"contains '#'.*safe_key"):
        store.insert_once("alerts", {"PartitionKey": "p", "RowKey": "a#b"})
