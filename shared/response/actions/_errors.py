"""Sorting Microsoft API failures into permanent (ActionFailed) and transient (left to the queue).

A refused request (400, 401, 403, 404) fails the same way on every retry, so the action fails now
with a message that says what to fix; throttling, 5xx, timeouts, conflicts and malformed bodies
propagate as they are so the respond job is retried through the queue (host.json maxDequeueCount).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from shared.http import BadRequest, Forbidden, NotFound, Unauthorized
from shared.response.actions.base import ActionFailed

PERMANENT = (BadRequest, Unauthorized, Forbidden, NotFound)


@contextmanager
def permanent_errors(doing: str) -> Iterator[None]:
    """Turn a refused Microsoft call into ActionFailed("<doing>: <what the service said and the fix>")."""
    try:
        yield
    except PERMANENT as exc:
        raise ActionFailed(f"{doing}: {exc}") from exc
