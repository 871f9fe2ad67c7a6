"""The campaign shortens the host's leases the way the Functions host allows (app settings)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from shared.response import jobs


@pytest.fixture
def fresh_cache() -> Iterator[None]:
    jobs._host_queues_and_timeout.cache_clear()
    yield
    jobs._host_queues_and_timeout.cache_clear()


def test_function_timeout_comes_from_host_json_by_default(fresh_cache: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AzureFunctionsJobHost__functionTimeout", raising=False)
    assert jobs.function_timeout_seconds() == 600.0  # host.json functionTimeout 00:10:00


def test_an_app_setting_overrides_host_json_function_timeout(fresh_cache: None,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AzureFunctionsJobHost__functionTimeout", "00:00:20")
    assert jobs.function_timeout_seconds() == 20.0
    assert jobs.max_dequeue_count() == 5  # the rest of host.json still applies


def test_a_malformed_override_falls_back_to_the_default(fresh_cache: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AzureFunctionsJobHost__functionTimeout", "twenty seconds")
    assert jobs.function_timeout_seconds() == jobs.DEFAULT_FUNCTION_TIMEOUT_SECONDS
