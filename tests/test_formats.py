"""The one helper each for timestamps, GUIDs and one-line error text (shared.formats)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from shared.alerts import parse_time as alert_time
from shared.formats import GUID_PATTERN, is_guid, iso, one_line, parse_time


def test_microsoft_timestamps_read_as_aware_utc() -> None:
    expected = datetime(2026, 3, 1, 10, 20, 30, 123456, tzinfo=UTC)
    assert parse_time("2026-03-01T10:20:30.1234567Z") == expected  # Graph and ARM send 7 digits
    assert parse_time("2026-03-01T12:20:30.1234567+02:00") == expected
    assert parse_time("2026-03-01T10:20:30.1234567") == expected  # naive means UTC
    assert parse_time("2026-03-01T10:20:30.5Z") == datetime(2026, 3, 1, 10, 20, 30, 500000, tzinfo=UTC)
    assert parse_time("2026-03-01") == datetime(2026, 3, 1, tzinfo=UTC)
    assert parse_time(datetime(2026, 3, 1, 10)) == datetime(2026, 3, 1, 10, tzinfo=UTC)  # a naive table value
    assert parse_time(datetime(2026, 3, 1, 12, tzinfo=timezone(timedelta(hours=2)))) == datetime(2026, 3, 1, 10,
                                                                                                  tzinfo=UTC)


def test_unreadable_times_are_none_not_an_error() -> None:
    for value in (None, "", "  ", "yesterday", "2026-13-01T00:00:00Z", 12, {"at": "x"}):
        assert parse_time(value) is None


def test_partner_centers_never_sentinel_is_no_time_for_alerts_only() -> None:
    assert alert_time("9999-12-31T23:59:59.9999999Z") is None
    assert parse_time("9999-12-31T23:59:59Z") == datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)


def test_iso_writes_utc_and_passes_text_through() -> None:
    assert iso(datetime(2026, 3, 1, 12, tzinfo=timezone(timedelta(hours=2)))) == "2026-03-01T10:00:00+00:00"
    assert iso(datetime(2026, 3, 1, 10)) == "2026-03-01T10:00:00+00:00"
    assert iso("2026-03-01") == "2026-03-01"
    assert iso(None) is None and iso("") is None


def test_guids_in_either_case_and_nothing_else() -> None:
    assert is_guid("aaaaaaaa-0001-4000-8000-000000000001")
    assert is_guid("AAAAAAAA-0001-4000-8000-00000000000A")
    for value in ("aaaaaaaa-0001-4000-8000-00000000000", "aaaaaaaa-0001-4000-8000-000000000001\n",
                  " aaaaaaaa-0001-4000-8000-000000000001", "not-a-guid", "", None, 1):
        assert not is_guid(value)
    assert GUID_PATTERN.startswith("[0-9a-fA-F]{8}")


def test_one_line_collapses_and_cuts_an_error() -> None:
    assert one_line("Forbidden\n  the caller lacks\ta role") == "Forbidden the caller lacks a role"
    assert one_line("x" * 20, 10) == "x" * 9 + "…"
    assert one_line(None) == ""
    sdk = "DefaultAzureCredential failed to retrieve a token.\nAttempted credentials:\n\tEnvironmentCredential: ..."
    assert one_line(sdk, 200, first_only=True) == "DefaultAzureCredential failed to retrieve a token."
    assert one_line(ValueError("bad\nvalue")) == "bad value"
