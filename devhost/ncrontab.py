"""NCRONTAB schedules, as the Functions timer trigger reads them.

Six fields: ``second minute hour day month weekday``, each ``*``, a number, a range ``a-b``, a
step ``*/n`` / ``a-b/n`` / ``a/n``, or a comma-separated list of those. Months and weekdays also
take three-letter names (``Jan``, ``Mon-Fri``); weekday 0 is Sunday. As in NCrontab (the library
the Functions host uses), a restricted day *and* weekday must both match. Times are UTC, the
host's default time zone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")

# (name, low, high, names mapped to numbers)
_FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (
    ("second", 0, 59, {}),
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day", 1, 31, {}),
    ("month", 1, 12, {name: i + 1 for i, name in enumerate(_MONTHS)}),
    ("weekday", 0, 6, {name: i for i, name in enumerate(_WEEKDAYS)}),
)

# How far ahead to look before deciding a schedule never fires (e.g. "0 0 0 30 2 *").
_HORIZON_DAYS = 366 * 5


class NCrontabError(ValueError):
    """The expression is not a valid six-field NCRONTAB schedule; the message says which field."""


def _number(token: str, name: str, low: int, high: int, names: dict[str, int]) -> int:
    value = names.get(token.lower()) if names else None
    if value is None:
        if not token.isdigit():
            raise NCrontabError(f"{name} field: {token!r} is not a number from {low} to {high}")
        value = int(token)
    if not low <= value <= high:
        raise NCrontabError(f"{name} field: {value} is outside {low}-{high}")
    return value


def _parse_field(text: str, name: str, low: int, high: int, names: dict[str, int]) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        if not part:
            raise NCrontabError(f"{name} field: empty list item in {text!r}")
        base, _, step_text = part.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise NCrontabError(f"{name} field: step {step_text!r} must be a positive number")
            step = int(step_text)
        if base == "*":
            start, end = low, high
        elif "-" in base:
            first, _, last = base.partition("-")
            start, end = _number(first, name, low, high, names), _number(last, name, low, high, names)
            if start > end:
                raise NCrontabError(f"{name} field: range {base!r} runs backwards")
        else:
            start = _number(base, name, low, high, names)
            # "a/n" means every n-th value from a to the end of the field, as in NCrontab.
            end = high if step_text else start
        values.update(range(start, end + 1, step))
    return frozenset(values)


@dataclass(frozen=True)
class Schedule:
    """A parsed NCRONTAB schedule; ``next_after`` gives the next firing time."""

    expression: str
    seconds: frozenset[int]
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]

    @classmethod
    def parse(cls, expression: str) -> Schedule:
        fields = expression.split()
        if len(fields) != 6:
            raise NCrontabError(
                f"{expression!r} has {len(fields)} fields; NCRONTAB needs six: "
                "second minute hour day month weekday (example: 0 */5 * * * *)"
            )
        parsed = [_parse_field(text, *spec) for text, spec in zip(fields, _FIELDS, strict=True)]
        return cls(" ".join(fields), *parsed)

    def matches(self, moment: datetime) -> bool:
        return (
            moment.second in self.seconds and moment.minute in self.minutes and moment.hour in self.hours
            and self._day_matches(moment)
        )

    def _day_matches(self, moment: datetime) -> bool:
        # Python: Monday = 0 ... Sunday = 6; NCRONTAB: Sunday = 0 ... Saturday = 6.
        weekday = (moment.weekday() + 1) % 7
        return moment.month in self.months and moment.day in self.days and weekday in self.weekdays

    def next_after(self, moment: datetime) -> datetime:
        """The first firing time strictly after ``moment`` (UTC; a naive moment is taken as UTC)."""
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        moment = moment.astimezone(UTC)
        candidate = moment.replace(microsecond=0) + timedelta(seconds=1)
        limit = candidate + timedelta(days=_HORIZON_DAYS)
        while candidate < limit:
            if not self._day_matches(candidate):
                candidate = (candidate + timedelta(days=1)).replace(hour=0, minute=0, second=0)
                continue
            if candidate.hour not in self.hours:
                candidate = (candidate + timedelta(hours=1)).replace(minute=0, second=0)
                continue
            if candidate.minute not in self.minutes:
                candidate = (candidate + timedelta(minutes=1)).replace(second=0)
                continue
            if candidate.second not in self.seconds:
                candidate += timedelta(seconds=1)
                continue
            return candidate
        raise NCrontabError(f"{self.expression!r} never fires (no match within {_HORIZON_DAYS // 366} years)")
