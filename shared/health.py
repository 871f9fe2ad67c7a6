"""Health report for GET /api/health: each part checked, ok or failing with a reason."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from shared.settings import Settings, SettingsError, get_settings


@dataclass
class PartStatus:
    ok: bool
    detail: str
    elapsed_ms: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class HealthReport:
    parts: dict[str, PartStatus]

    @property
    def ok(self) -> bool:
        return all(p.ok for p in self.parts.values())

    def failing(self) -> list[str]:
        return [name for name, part in self.parts.items() if not part.ok]

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": "ok" if self.ok else "failing",
            "failing": self.failing(),
            "parts": {
                name: {"ok": p.ok, "detail": p.detail, "elapsed_ms": round(p.elapsed_ms, 1), **p.extra}
                for name, p in self.parts.items()
            },
        }


def _timed(check: Callable[[], PartStatus]) -> PartStatus:
    start = time.perf_counter()
    try:
        status = check()
    except Exception as exc:  # a health check reports failures, it never raises them
        status = PartStatus(False, f"{type(exc).__name__}: {_first_line(exc)}")
    status.elapsed_ms = (time.perf_counter() - start) * 1000
    return status


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else ""


def check_storage(settings: Settings) -> PartStatus:
    from shared.storage.clients import queue_service, table_service

    tables = table_service(settings.storage)
    next(iter(tables.list_tables(results_per_page=1)), None)
    queues = queue_service(settings.storage)
    next(iter(queues.list_queues(results_per_page=1)), None)
    return PartStatus(True, f"tables and queues reachable via {settings.storage.describe()}")


def build_report(settings: Settings | None = None) -> HealthReport:
    try:
        settings = settings or get_settings()
    except SettingsError as exc:
        return HealthReport({"settings": PartStatus(False, str(exc))})
    parts = {"settings": PartStatus(True, "loaded")}
    parts["storage"] = _timed(lambda: check_storage(settings))
    return parts_report(parts)


def parts_report(parts: dict[str, PartStatus]) -> HealthReport:
    return HealthReport(parts)
