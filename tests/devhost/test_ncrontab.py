"""The NCRONTAB parser: the schedules Functions timers use, and when they fire next."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devhost.ncrontab import NCrontabError, Schedule


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("0 */5 * * * *", "2026-01-01T10:03:12", "2026-01-01T10:05:00"),  # the default POLL_SCHEDULE
        ("0 */5 * * * *", "2026-01-01T10:05:00", "2026-01-01T10:10:00"),  # strictly after
        ("0 0 7 * * *", "2026-01-01T07:00:01", "2026-01-02T07:00:00"),  # the default DIGEST_SCHEDULE
        ("*/10 * * * * *", "2026-01-01T10:00:55", "2026-01-01T10:01:00"),
        ("30 15 9-17/4 * * *", "2026-01-01T09:20:00", "2026-01-01T13:15:30"),  # range with step
        ("0 0 12 * * Mon-Fri", "2026-01-02T12:00:00", "2026-01-05T12:00:00"),  # Fri -> Mon, names
        ("0 0 0 * * 0", "2026-01-01T00:00:00", "2026-01-04T00:00:00"),  # Sunday is 0
        ("0 0 0 1 Jan,Jul *", "2026-02-01T00:00:00", "2026-07-01T00:00:00"),  # month names in a list
        ("0 0 0 29 2 *", "2026-03-01T00:00:00", "2028-02-29T00:00:00"),  # leap day
        ("5/20 * * * * *", "2026-01-01T00:00:06", "2026-01-01T00:00:25"),  # a/n = from a, every n
        ("0 0 0 13 * 5", "2026-01-01T00:00:00", "2026-02-13T00:00:00"),  # day AND weekday: Friday 13th
        ("0 59 23 31 12 *", "2026-12-31T23:59:00", "2027-12-31T23:59:00"),  # year roll-over
    ],
)
def test_next_occurrence(expression: str, after: str, expected: str) -> None:
    assert Schedule.parse(expression).next_after(at(after)) == at(expected)


def test_naive_times_are_utc_and_microseconds_do_not_fire_twice() -> None:
    schedule = Schedule.parse("* * * * * *")
    assert schedule.next_after(datetime(2026, 1, 1, 0, 0, 0, 999_999)) == at("2026-01-01T00:00:01")


@pytest.mark.parametrize(
    ("expression", "fragment"),
    [
        ("*/5 * * * *", "six"),  # five-field cron
        ("0 */5 * * * * *", "six"),
        ("60 * * * * *", "second field"),
        ("0 0 24 * * *", "hour field"),
        ("0 0 0 0 * *", "day field"),
        ("0 0 0 * 13 *", "month field"),
        ("0 0 0 * * 7", "weekday field"),
        ("0 0 0 * * Funday", "weekday field"),
        ("*/0 * * * * *", "step"),
        ("0 30-10 * * * *", "backwards"),
        ("0 1,,2 * * * *", "empty"),
    ],
)
def test_invalid_expressions_name_the_field(expression: str, fragment: str) -> None:
    with pytest.raises(NCrontabError, match=fragment):
        Schedule.parse(expression)


def test_a_schedule_that_never_fires_says_so() -> None:
    with pytest.raises(NCrontabError, match="never fires"):
        Schedule.parse("0 0 0 30 2 *").next_after(at("2026-01-01T00:00:00"))


def _field(low: int, high: int) -> st.SearchStrategy[str]:
    number = st.integers(low, high)
    return st.one_of(
        st.just("*"),
        number.map(str),
        st.tuples(number, number).map(lambda p: f"{min(p)}-{max(p)}"),
        st.integers(1, high - low + 1).map(lambda n: f"*/{n}"),
        st.lists(number, min_size=1, max_size=4).map(lambda xs: ",".join(map(str, xs))),
    )


@settings(max_examples=60, deadline=None)
@given(seconds=_field(0, 59), minutes=_field(0, 59),
       start=st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1)))
def test_next_occurrence_is_the_first_matching_second(seconds: str, minutes: str, start: datetime) -> None:
    schedule = Schedule.parse(f"{seconds} {minutes} * * * *")
    found = schedule.next_after(start)
    start = start.replace(tzinfo=UTC)
    assert found > start and schedule.matches(found)
    moment = start.replace(microsecond=0) + timedelta(seconds=1)
    while moment < found:  # nothing in between matches (at most an hour and a minute of seconds)
        assert not schedule.matches(moment)
        moment += timedelta(seconds=1)


def test_schedule_settings_names_every_setting_a_timer_needs_so_a_harness_can_switch_them_all_off() -> None:
    import azure.functions as func

    from devhost.host import schedule_settings

    app = func.FunctionApp()

    @app.timer_trigger(schedule="%NIGHTLY% ", arg_name="timer")
    def nightly(timer: func.TimerRequest) -> None: ...

    @app.timer_trigger(schedule="0 */5 * * * *", arg_name="timer")
    def literal(timer: func.TimerRequest) -> None: ...

    assert schedule_settings(app) == ["NIGHTLY"]
    # The real app: a new timer's setting joins the list, and the benchmark and chaos stacks set it.
    assert {"POLL_SCHEDULE", "DIGEST_SCHEDULE", "DETECT_SCHEDULE"} <= set(schedule_settings())
