"""The small value formats read and written everywhere: timestamps, GUIDs and one-line error text.

One helper each, so a fix (Microsoft's seven fractional digits, a naive time read back from a
table, a multi-line SDK error) is made once. Standard library only: imported by the clients, the
alert model, the ledger and the views, and at function import time.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, Final

GUID_PATTERN: Final = r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}"
"""A GUID in either case, unanchored (embed it in a larger pattern, e.g. an ARM resource id)."""
_GUID: Final = re.compile(GUID_PATTERN)
_FRACTION: Final = re.compile(r"^(.*?T\d{2}:\d{2}:\d{2})(\.\d+)?(.*)$")

DEFAULT_LINE_CHARS: Final = 500


def is_guid(value: Any) -> bool:
    """True when ``value`` is exactly one GUID, in either case."""
    return isinstance(value, str) and bool(_GUID.fullmatch(value))


def parse_time(value: Any) -> datetime | None:
    """ISO-8601 (or a datetime) as aware UTC; naive means UTC; None when absent or unreadable.

    Microsoft sends up to 7 fractional digits (Python reads 6) and ``Z`` for UTC; both are handled.
    """
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        text = value.strip().replace("Z", "+00:00")
        match = _FRACTION.match(text)
        if match:
            fraction = match.group(2) or ""
            micro = ("." + fraction[1:7].ljust(6, "0")) if fraction else ""
            text = match.group(1) + micro + match.group(3)
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            return None
    else:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def iso(value: Any) -> str | None:
    """A time for JSON output as ISO-8601 UTC; other values as text; None when empty."""
    if isinstance(value, datetime):
        moment = parse_time(value)
        return moment.isoformat() if moment else None
    return str(value) if value else None


def one_line(text: Any, limit: int = DEFAULT_LINE_CHARS, *, first_only: bool = False) -> str:
    """An error as one short line for rows, logs, API answers and CLI output.

    ``first_only`` keeps the first non-blank line (SDK errors append pages of troubleshooting text).
    """
    raw = str(text if text is not None else "")
    if first_only:
        raw = next((line for line in raw.splitlines() if line.strip()), "")
    line = " ".join(raw.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


__all__ = ["GUID_PATTERN", "is_guid", "iso", "one_line", "parse_time"]
