"""An in-memory record of invocations, so a developer (and a test) can see what ran and how it ended."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class Invocation:
    """One finished invocation: which function, why it ran, and how it ended."""

    invocation_id: str
    function: str
    trigger: str
    """``http``, ``timer``, ``queue`` or ``manual`` (POST /admin/functions/<name>)."""
    started: datetime
    duration_ms: float
    outcome: str
    """``succeeded`` or ``failed``."""
    error: str | None = None
    """``ExceptionType: first line of the message`` when it failed."""
    details: dict[str, object] = field(default_factory=dict)
    """Trigger facts: the queue message id and dequeue count, the timer's past_due, the HTTP route."""

    @property
    def succeeded(self) -> bool:
        return self.outcome == "succeeded"


class InvocationLog:
    """The most recent invocations, newest last; ``wait_for`` blocks until one matches."""

    def __init__(self, capacity: int = 1000) -> None:
        self._items: deque[Invocation] = deque(maxlen=capacity)
        self._changed = threading.Condition()

    def add(self, invocation: Invocation) -> None:
        with self._changed:
            self._items.append(invocation)
            self._changed.notify_all()

    def snapshot(self) -> list[Invocation]:
        with self._changed:
            return list(self._items)

    def matching(self, predicate: Callable[[Invocation], bool]) -> list[Invocation]:
        return [item for item in self.snapshot() if predicate(item)]

    def wait_for(self, predicate: Callable[[Invocation], bool], *, count: int = 1,
                 timeout: float = 30.0) -> list[Invocation]:
        """Block until ``count`` recorded invocations match; raise TimeoutError naming what was seen."""
        with self._changed:
            found = self._changed.wait_for(
                lambda: sum(1 for item in self._items if predicate(item)) >= count, timeout=timeout
            )
            matched = [item for item in self._items if predicate(item)]
            if not found:
                seen = ", ".join(f"{i.function}:{i.outcome}" for i in self._items) or "nothing"
                raise TimeoutError(f"{len(matched)} of {count} expected invocations within {timeout:.0f}s; "
                                   f"recorded: {seen}")
            return matched
