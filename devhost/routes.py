"""HTTP route templates as the Functions host reads them (ASP.NET Core style, case-insensitive).

Supported: literal segments, ``{name}``, ``{name:int}`` (also ``long``, ``bool``, ``guid``,
``alpha``, ``double``; other constraints match any segment), optional ``{name?}`` as the last
segment, and a catch-all ``{*name}``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")

_PARAM = re.compile(r"\{(\*?)([A-Za-z_][\w-]*)(?::([A-Za-z]+)(?:\([^)]*\))?)?(\?)?\}")
_CONSTRAINTS = {
    "int": r"-?\d+",
    "long": r"-?\d+",
    "bool": r"(?i:true|false)",
    "guid": r"[0-9A-Fa-f]{8}-?(?:[0-9A-Fa-f]{4}-?){3}[0-9A-Fa-f]{12}",
    "alpha": r"[A-Za-z]+",
    "double": r"-?\d+(?:\.\d+)?",
}


class RouteError(ValueError):
    """A route template the dev host cannot read; the message names it."""


@dataclass(frozen=True)
class Route(Generic[T]):
    template: str
    pattern: re.Pattern[str]
    params: tuple[str, ...]
    target: T

    @property
    def specificity(self) -> tuple[int, int]:
        """Literal routes before parameterised ones, catch-alls last (as ASP.NET orders them)."""
        return (int("{*" in self.template), len(self.params))

    def match(self, path: str) -> dict[str, str] | None:
        found = self.pattern.fullmatch(path)
        if found is None:
            return None
        return {name: value for name, value in zip(self.params, found.groups(), strict=True) if value is not None}


def compile_route(template: str, target: T) -> Route[T]:
    """Compile ``template`` (without the ``api/`` prefix) to a Route matching request paths."""
    segments = [s for s in template.strip("/").split("/") if s] if template.strip("/") else []
    regex = ""
    names: list[str] = []
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        position = 0
        piece = ""
        optional = False
        for match in _PARAM.finditer(segment):
            piece += re.escape(segment[position:match.start()])
            catch_all, name, constraint, question = match.groups()
            if (catch_all or question) and not last:
                raise RouteError(
                    f"route {template!r}: {{{name}}} may be optional or catch-all only in the last segment"
                )
            names.append(name)
            body = ".*" if catch_all else _CONSTRAINTS.get((constraint or "").lower(), r"[^/]+")
            piece += f"({body})"
            optional = optional or bool(question) or bool(catch_all)
            position = match.end()
        piece += re.escape(segment[position:])
        if "{" in piece.replace(r"\{", "") or "}" in piece.replace(r"\}", ""):
            raise RouteError(f"route {template!r}: cannot read segment {segment!r}")
        regex += f"(?:/{piece})?" if optional else f"/{piece}"
    return Route(template, re.compile(regex or "/?", re.IGNORECASE), tuple(names), target)


class Router(Generic[T]):
    """Routes under one prefix (``api`` by default); ``find`` returns the match for a path."""

    def __init__(self, prefix: str) -> None:
        self.prefix = "/" + prefix.strip("/") if prefix.strip("/") else ""
        self._routes: list[Route[T]] = []

    def add(self, template: str, target: T) -> None:
        self._routes.append(compile_route(template, target))
        self._routes.sort(key=lambda r: r.specificity)

    def find(self, path: str) -> list[tuple[T, dict[str, str]]]:
        """Every route matching ``path``, most specific first, each with its route parameters."""
        path = "/" + path.strip("/")
        if self.prefix:
            if path.lower() != self.prefix.lower() and not path.lower().startswith(self.prefix.lower() + "/"):
                return []
            path = path[len(self.prefix):]
        path = path.rstrip("/")
        found: list[tuple[T, dict[str, str]]] = []
        for route in self._routes:
            params = route.match(path)
            if params is not None:
                found.append((route.target, params))
        return found

    @property
    def templates(self) -> list[str]:
        return [route.template for route in self._routes]
