"""Fault injection: make a stand-in fail the way Microsoft's services fail.

A fault matches requests by service, method and a path regex (``re.search``, case-insensitive)
and is used ``times`` times (``None`` = every matching request). Kinds:

- ``status``: answer ``status`` (429, 500, 503, ...) in the service's error shape, with
  ``Retry-After: <retry_after>`` when given;
- ``delay``: wait ``seconds`` and then answer normally;
- ``drop``: close the connection without any response;
- ``malformed_json``: answer 200 with a body that is not valid JSON;
- ``pc_mfa_required``: Partner Center's 401 with error code 900421 (App+User token without MFA).

Faults come from the scenario's ``"faults"`` list, ``Sandbox.add_fault`` or
``POST /_sandbox/faults`` on any stand-in's port, all with the same fields.
"""

from __future__ import annotations

import re
import threading
from dataclasses import asdict, dataclass, field, fields
from typing import Any

KINDS = ("status", "delay", "drop", "malformed_json", "pc_mfa_required")


class FaultError(ValueError):
    """A fault definition is invalid; the message names the field."""


@dataclass
class Fault:
    service: str
    kind: str
    method: str | None = None
    path: str | None = None
    times: int | None = 1
    status: int | None = None
    retry_after: float | None = None
    seconds: float = 0.0
    message: str | None = None
    id: int = field(default=0, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise FaultError(f"unknown fault kind {self.kind!r}; choose from {', '.join(KINDS)}")
        if self.kind == "status" and (self.status is None or not 400 <= int(self.status) <= 599):
            raise FaultError("a 'status' fault needs status between 400 and 599, e.g. 429, 500 or 503")
        if self.kind == "delay" and self.seconds <= 0:
            raise FaultError("a 'delay' fault needs seconds > 0")
        if self.times is not None and self.times < 1:
            raise FaultError("times must be at least 1, or null for every matching request")
        if self.path is not None:
            try:
                re.compile(self.path)
            except re.error as exc:
                raise FaultError(f"path is not a valid regex: {exc}") from None
        if self.method is not None:
            self.method = self.method.upper()

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, default_service: str | None = None) -> Fault:
        """A fault from JSON fields (the scenario file and POST /_sandbox/faults)."""
        if not isinstance(data, dict):
            raise FaultError("a fault must be a JSON object")
        known = {f.name for f in fields(cls)} - {"id"}
        unknown = set(data) - known
        if unknown:
            raise FaultError(f"unknown fault field {sorted(unknown)[0]!r}; known: {', '.join(sorted(known))}")
        values = dict(data)
        if "service" not in values:
            if default_service is None:
                raise FaultError("a fault needs 'service'")
            values["service"] = default_service
        if "kind" not in values:
            raise FaultError("a fault needs 'kind'")
        try:
            return cls(**values)
        except TypeError as exc:
            raise FaultError(str(exc)) from None

    def matches(self, service: str, method: str, path: str) -> bool:
        if self.service not in (service, "*"):
            return False
        if self.method is not None and self.method != method.upper():
            return False
        return self.path is None or re.search(self.path, path, re.IGNORECASE) is not None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class FaultSet:
    """The active faults, consumed in the order they were added (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._next_id = 1

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            fault.id = self._next_id
            self._next_id += 1
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def list(self) -> list[Fault]:
        with self._lock:
            return list(self._faults)

    def take(self, service: str, method: str, path: str) -> Fault | None:
        """The first fault matching this request, using up one of its ``times``."""
        with self._lock:
            for fault in self._faults:
                if fault.matches(service, method, path):
                    if fault.times is not None:
                        fault.times -= 1
                        if fault.times <= 0:
                            self._faults.remove(fault)
                    return fault
        return None
