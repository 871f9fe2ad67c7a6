"""Which stand-in routes the contract suite drives, checked against sandbox/README.md's route list.

Each contract test names the README routes it exercises with ``@covers("service", "METHOD path")``;
tests/contract/test_route_list.py fails when a listed route has no contract test, when a test
names a route the README does not list, or when the stand-ins serve a route the README omits.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

F = TypeVar("F", bound=Callable[..., object])

COVERED: dict[str, set[str]] = {}
"""service -> {"METHOD path"} as written in sandbox/README.md's route list."""


def covers(service: str, *routes: str) -> Callable[[F], F]:
    """Record that the decorated test drives ``routes`` of ``service`` (README spelling)."""

    def mark(func: F) -> F:
        COVERED.setdefault(service, set()).update(routes)
        return func

    return mark
