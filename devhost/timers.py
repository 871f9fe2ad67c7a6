"""Timer triggers: fire on the NCRONTAB schedule, or now on demand, never two runs at once.

``past_due`` is true when a run makes up for a slot the previous run overran, or starts more
than a second after its scheduled time (an on-demand run held it up). Missed occurrences collapse into one
past-due run, as in the Functions host. Schedule status lives in memory (the host keeps it in
blob storage across restarts when ``useMonitor`` is on).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from devhost.app import AppFunction, TimerTrigger
from devhost.invoker import Invoker
from devhost.ncrontab import NCrontabError, Schedule

logger = logging.getLogger("devhost.timers")

PAST_DUE_TOLERANCE_SECONDS = 1.0
SETTING_REFERENCE = re.compile(r"%([^%\s]+)%")


class TimerScheduleError(ValueError):
    """A timer's schedule cannot be resolved or parsed; the message names the function and the setting."""


def resolve_schedule(function_name: str, schedule: str, environ: Mapping[str, str]) -> Schedule:
    """Replace ``%SETTING%`` references from ``environ``, as the host does, and parse the result."""

    def lookup(match: re.Match[str]) -> str:
        value = environ.get(match.group(1))
        if value is None or not value.strip():
            raise TimerScheduleError(
                f"timer {function_name}: schedule {schedule!r} names setting {match.group(1)} which is not set; "
                f"add it to local.settings.json (see local.settings.sample.json), e.g. {match.group(1)}=0 */5 * * * *"
            )
        return value

    resolved = SETTING_REFERENCE.sub(lookup, schedule)
    try:
        return Schedule.parse(resolved)
    except NCrontabError as exc:
        raise TimerScheduleError(f"timer {function_name}: {exc}") from None


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


class TimerRunner:
    """Runs one timer function on its schedule on a thread of its own."""

    def __init__(self, function: AppFunction, schedule: Schedule, invoker: Invoker) -> None:
        if not isinstance(function.trigger, TimerTrigger):
            raise TypeError(f"{function.name} is not a timer function")
        self.function = function
        self.schedule = schedule
        self._trigger = function.trigger
        self._invoker = invoker
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.last: datetime | None = None
        self.next_due: datetime = schedule.next_after(datetime.now(UTC))

    def start(self) -> None:
        self._spawn(self._loop, f"devhost-timer-{self.function.name}")

    def fire_now(self) -> None:
        """Run once now (on another thread), after any run in progress ends."""
        self._spawn(lambda: self._run(trigger="manual", scheduled=None),
                    f"devhost-timer-{self.function.name}-manual")

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        for thread in list(self._threads):
            thread.join(timeout=timeout)
            if thread.is_alive():
                logger.warning("timer %s is still running after %.0fs; leaving it", self.function.name, timeout)

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        self._threads = [t for t in self._threads if t.is_alive()]
        thread = threading.Thread(target=target, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _loop(self) -> None:
        if self._trigger.run_on_startup:
            self._run(trigger="timer", scheduled=None, reason="Timer fired at startup (runOnStartup)")
        overran = False
        while not self._stop.is_set():
            delay = (self.next_due - datetime.now(UTC)).total_seconds()
            if delay > 0 and self._stop.wait(delay):
                return
            scheduled = self.next_due
            self._run(trigger="timer", scheduled=scheduled, overran=overran)
            upcoming = self.schedule.next_after(scheduled)
            now = datetime.now(UTC)
            # Overran: later occurrences were missed; fire once for the latest of them (past due).
            overran = upcoming <= now
            for _ in range(100_000):
                following = self.schedule.next_after(upcoming)
                if following > now:
                    break
                upcoming = following
            self.next_due = upcoming

    def _run(self, *, trigger: str, scheduled: datetime | None, reason: str = "", overran: bool = False) -> None:
        from azure.functions.timer import TimerRequest

        with self._lock:
            if self._stop.is_set() and trigger == "timer":
                return
            now = datetime.now(UTC)
            past_due = overran or (scheduled is not None
                                   and (now - scheduled).total_seconds() > PAST_DUE_TOLERANCE_SECONDS)
            upcoming = self.schedule.next_after(scheduled or now)
            request = TimerRequest(
                past_due=past_due,
                schedule_status={"Last": _iso(self.last), "Next": _iso(upcoming), "LastUpdated": _iso(now)},
                schedule={"AdjustForDST": True},
            )
            if not reason:
                reason = ("This function was programmatically called via the host APIs." if trigger == "manual"
                          else f"Timer fired at {now.isoformat()}")
            try:
                self._invoker.invoke(self.function, request, trigger=trigger, reason=reason,
                                     details={"past_due": past_due, "scheduled": _iso(scheduled)})
            except Exception:  # noqa: S110 - logged with its traceback by the invoker; the timer keeps going
                pass
            finally:
                self.last = now
