"""What the admin API's handlers enforce and its OpenAPI document states: one place for both.

``shared.admin.api`` (the handlers) and ``shared.admin.openapi`` (the document) both import from
here, so neither imports the other at module level and a limit changed here changes both.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Final

from shared.alerts import STATUSES
from shared.operations.resolve import REASONS

__all__ = ["AGE", "AGE_UNITS", "ALERT_STATUSES", "DEFAULT_LIMIT", "EARLIEST_SINCE", "KEY_QUERY_PARAM", "MAX_LIMIT",
           "MAX_REASON_CHARS", "RESOLVE_REASONS", "SINCE_PATTERN"]

DEFAULT_LIMIT: Final = 200
MAX_LIMIT: Final = 1000
MAX_REASON_CHARS: Final = 1000
ALERT_STATUSES: Final = STATUSES
RESOLVE_REASONS: Final = REASONS
KEY_QUERY_PARAM: Final = "code"
"""The Functions host accepts the function key as ``?code=``; handlers ignore it like any host parameter."""

AGE = re.compile(r"^(?:([0-9]{1,7})(m)|([0-9]{1,5})(h)|([0-9]{1,4})(d))$")
"""An age: at most 7 digits of minutes, 5 of hours or 4 of days (all within the years since EARLIEST_SINCE)."""
EARLIEST_SINCE: Final = datetime(1970, 1, 1, tzinfo=UTC)
"""``since`` before this is refused (400): no alert is that old, and year-1 times break date arithmetic."""
SINCE_PATTERN: Final = (r"^([0-9]{1,7}m|[0-9]{1,5}h|[0-9]{1,4}d|"
                        r"(19[7-9][0-9]|[2-9][0-9]{3})-[0-9]{2}-[0-9]{2}([T ][0-9:.]+(Z|[+-][0-9]{2}:?[0-9]{2})?)?)$")
"""What the OpenAPI document states for ``since`` (the handler's rules, as a pattern)."""
AGE_UNITS: Final = {"m": "minutes", "h": "hours", "d": "days"}
