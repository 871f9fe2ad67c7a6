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


def check_key_vault(settings: Settings) -> PartStatus:
    """Key Vault holds the refresh token and client secrets: without it no source can be read."""
    if not settings.key_vault_url:
        return PartStatus(False, "KEY_VAULT_URL is not set: the refresh token and client secrets are read from "
                                 "Key Vault; example: KEY_VAULT_URL=https://contoso-fraud-kv.vault.azure.net")
    from shared.auth.secrets import SecretStore

    store = SecretStore(settings)
    versions = store.versions(settings.refresh_token_secret_name)
    latest = max((v.updated_on for v in versions if v.updated_on), default=None)
    return PartStatus(True, f"{settings.key_vault_url} reachable; refresh token secret has {len(versions)} version(s)",
                      extra={"refresh_token_last_rolled": latest.isoformat() if latest else None})


def check_tokens(settings: Settings) -> PartStatus:
    """The last outcome of each token the app used (recorded by the sync runs)."""
    from shared.intake.checkpoints import token_health
    from shared.storage.tables import TableStore

    rows = token_health(TableStore(settings))
    if not rows:
        return PartStatus(True, "no token used yet (no sync has run)")
    failing = [r for r in rows if not r["ok"]]
    extra = {"principals": {r["principal"]: "ok" if r["ok"] else r["detail"].get("kind", "error") for r in rows}}
    if failing:
        return PartStatus(False, "; ".join(f"{r['principal']}: {r['detail'].get('message', 'token failed')}"
                                           for r in failing), extra=extra)
    return PartStatus(True, f"{len(rows)} token(s) healthy", extra=extra)


def build_report(settings: Settings | None = None) -> HealthReport:
    try:
        settings = settings or get_settings()
    except SettingsError as exc:
        return HealthReport({"settings": PartStatus(False, str(exc))})
    from shared.response.policy import policy_health

    checked = settings
    return HealthReport({
        "settings": PartStatus(True, "loaded"),
        "storage": _timed(lambda: check_storage(checked)),
        "key_vault": _timed(lambda: check_key_vault(checked)),
        "tokens": _timed(lambda: check_tokens(checked)),
        "policy": _timed(lambda: policy_health(checked)),
    })
