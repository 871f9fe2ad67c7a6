"""The webhook fuzz run (make fuzz), small and seeded: ~300 hostile requests through the dev host."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from chaos.fuzz import CASES, DROPPED, TIMEOUT, FuzzOptions, FuzzResult, Target, build_request, run_fuzz

TARGET = Target(port=1, cert_url="https://127.0.0.1:4443/cert/c.cer", sign=lambda body: "c2ln", max_body=65536,
                key="the-receivers-key", other_key="another-functions-key")


@pytest.fixture(scope="module")
def fuzzed() -> Iterator[FuzzResult]:
    yield run_fuzz(FuzzOptions(requests=300, seed=1, max_seconds=60))


def test_every_request_is_answered_and_none_with_a_server_error(fuzzed: FuzzResult) -> None:
    text = fuzzed.render()
    assert fuzzed.sent == 300, text
    assert fuzzed.statuses[DROPPED] == 0 and fuzzed.statuses[TIMEOUT] == 0, text
    assert fuzzed.bad == {} and "RESULT: OK" in text, text
    # Hostile input is refused with a 4xx; genuine signed events with the receiver's key get through.
    assert fuzzed.by_kind["valid signed event"].keys() == {"200"}, text
    assert fuzzed.by_kind["signature over other bytes"].keys() == {"401"}, text
    assert all(status.startswith("4") for kind, c in fuzzed.by_kind.items() if kind.startswith("certificate URL")
               and not kind.endswith("query string") for status in c), text


def test_only_the_receivers_own_key_opens_it(fuzzed: FuzzResult) -> None:
    text = fuzzed.render()
    keyed = {kind: c for kind, c in fuzzed.by_kind.items() if kind.startswith("function key:")}
    refused = {kind: c for kind, c in keyed.items() if kind != "function key: the receiver's in ?code="}
    assert len(refused) >= 3, text  # none, wrong, another function's, wrong ?code=, empty header
    assert all(c.keys() == {"401"} for c in refused.values()), text
    assert keyed["function key: the receiver's in ?code="].keys() == {"200"}, text


def test_a_run_is_replayable_and_covers_every_kind_of_input() -> None:
    first = [build_request(5, i, TARGET) for i in range(300)]
    assert first == [build_request(5, i, TARGET) for i in range(300)]
    assert first != [build_request(6, i, TARGET) for i in range(300)]
    assert len({kind for kind, _ in first}) >= 20
    assert {kind for kind, _ in first} >= {"function key: none", "function key: wrong", "function key: empty header",
                                           "function key: another function's", "function key: wrong ?code=",
                                           "function key: the receiver's in ?code="}
    assert len(CASES) == 11


def test_a_server_error_or_a_drop_fails_the_run() -> None:
    result = FuzzResult(wanted=3)
    result.record("valid signed event", "200")
    result.record("odd method", "501")
    result.record("huge body", DROPPED)
    assert result.bad == {"odd method": {"501": 1}, "huge body": {DROPPED: 1}}
    assert len(result.failures()) == 2 and "RESULT: FAILED" in result.render()
