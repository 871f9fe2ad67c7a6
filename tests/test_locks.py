"""Striped locks: a key always gets its own stripe back, and keys spread over the stripes."""

from __future__ import annotations

import pytest

from shared.locks import StripedLocks


def test_a_key_maps_to_the_same_lock_every_time_and_keys_spread_over_the_stripes() -> None:
    locks = StripedLocks(64)
    assert locks.for_key("notify", "sub-1~crypto") is locks.for_key("notify", "sub-1~crypto")
    used = {id(locks.for_key("row", str(i))) for i in range(1000)}
    assert len(used) > 56  # nearly every stripe, so unrelated rows seldom wait for each other


def test_no_stripes_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        StripedLocks(0)
