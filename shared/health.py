"""Health for GET /api/health: each part checked, ok or failing with a reason.

Anonymous callers (load balancers, uptime probes) get only ``{"status": "ok" | "failing"}``, from a
report at most SUMMARY_CACHE_SECONDS old: the checks read Key Vault and storage, so an anonymous
caller must not be able to multiply those reads, and component details (vault URL, token state)
are not for everyone. A caller with an access token carrying FraudResponder.Read gets the full
report, checked now.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

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
            "warnings": [f"{name}: {warning}" for name, p in self.parts.items()
                         for warning in p.extra.get("warnings", []) if p.ok],
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

    # Only the latest version: the secret gains a version on most polls (the token is rolled), so
    # listing them all would slow every health check down as months pass.
    info = SecretStore(settings).get_value(settings.refresh_token_secret_name).info
    rolled = info.updated_on or info.created_on
    return PartStatus(True, f"{settings.key_vault_url} reachable; refresh token secret readable",
                      extra={"refresh_token_last_rolled": rolled.isoformat() if rolled else None})


def check_tokens(settings: Settings) -> PartStatus:
    """Each token's last outcome (recorded by the sync runs) and the SAM refresh token's age.

    Failing when a token is refused now or the refresh token has expired; ok with a ``warnings``
    entry (and the re-consent steps) when fewer than TOKEN_WARN_DAYS days are left, so monitoring
    sees it well before polling stops. An unreadable Key Vault is the key_vault part's failure.
    """
    from shared.operations.token_status import EXPIRING, token_status
    from shared.storage.tables import TableStore

    status = token_status(settings, TableStore(settings))
    age = status["refresh_token"]
    extra: dict[str, Any] = {
        "state": status["state"],
        "principals": {p["principal"]: "ok" if p["ok"] else p["kind"] for p in status["principals"]},
        "refresh_token_expires_if_unused_at": age["expires_if_unused_at"],
        "refresh_token_days_left": age["days_left"],
    }
    if status["warnings"]:
        extra["warnings"] = status["warnings"]
    if status["next_steps"]:
        extra["next_steps"] = status["next_steps"]
    if not status["ok"]:
        return PartStatus(False, "; ".join(status["warnings"]) or f"tokens are {status['state']}", extra=extra)
    if status["state"] == EXPIRING:
        return PartStatus(True, "WARNING: " + status["warnings"][0], extra=extra)
    if not status["principals"]:
        return PartStatus(True, "no token used yet (no sync has run)", extra=extra)
    days = f"; refresh token has {age['days_left']} day(s) left" if age["days_left"] is not None else ""
    return PartStatus(True, f"{len(status['principals'])} token(s) healthy{days}", extra=extra)


def check_sources(settings: Settings) -> PartStatus:
    """Each alert source's latest sync (recorded per source): one failing source shows here even
    while the others keep syncing."""
    from shared.intake.checkpoints import source_syncs
    from shared.storage.tables import TableStore

    rows = source_syncs(TableStore(settings))
    extra: dict[str, Any] = {"sources": {r["source"]: "ok" if r["ok"] else r["error"][:300] for r in rows}}
    failing = [r for r in rows if not r["ok"]]
    if failing:
        return PartStatus(False, "; ".join(f"{r['source']}: {r['error'][:300]}" for r in failing), extra=extra)
    if not rows:
        return PartStatus(True, "no sync has run yet", extra=extra)
    return PartStatus(True, f"{len(rows)} source(s) syncing", extra=extra)


def check_detectors(settings: Settings) -> PartStatus:
    """Each detector's latest run (recorded per detector, like the sources): one failing detector
    shows here while the others keep running."""
    from shared.detection.runner import detector_status
    from shared.storage.tables import TableStore

    rows = detector_status(TableStore(settings))
    extra: dict[str, Any] = {"detectors": {r["detector"]: "ok" if r["ok"] else r["error"][:300] for r in rows}}
    failing = [r for r in rows if not r["ok"]]
    if failing:
        return PartStatus(False, "; ".join(f"{r['detector']}: {r['error'][:300]}" for r in failing), extra=extra)
    if not rows:
        return PartStatus(True, "no detection has run yet", extra=extra)
    return PartStatus(True, f"{len(rows)} detector(s) running", extra=extra)


def policy_health(settings: Settings) -> PartStatus:
    """The policy part: ok with the rule count, or the first problem (health asks the policy, never back)."""
    from shared.response.policy import PolicyError, get_policy

    try:
        policy = get_policy(settings.policy_path)
    except PolicyError as exc:
        more = f" (and {len(exc.errors) - 1} more; run `fraud-responder policy check`)" if len(exc.errors) > 1 else ""
        return PartStatus(False, f"{exc.path}: {exc.errors[0]}{more}")
    return PartStatus(True, f"{policy.summary()} from {policy.path}",
                      extra={"rules": len(policy.rules), "sha256": policy.sha256, "warnings": list(policy.warnings)})


def build_report(settings: Settings | None = None) -> HealthReport:
    try:
        settings = settings or get_settings()
    except SettingsError as exc:
        return HealthReport({"settings": PartStatus(False, str(exc))})
    checked = settings
    return HealthReport({
        "settings": PartStatus(True, "loaded"),
        "storage": _timed(lambda: check_storage(checked)),
        "key_vault": _timed(lambda: check_key_vault(checked)),
        "tokens": _timed(lambda: check_tokens(checked)),
        "sources": _timed(lambda: check_sources(checked)),
        "detectors": _timed(lambda: check_detectors(checked)),
        "policy": _timed(lambda: policy_health(checked)),
    })


SUMMARY_CACHE_SECONDS: Final = 30.0

_summary_lock = threading.Lock()
_summary: dict[Settings | None, tuple[float, bool]] = {}


def reset_summary_cache() -> None:
    with _summary_lock:
        _summary.clear()


def summary_ok(settings: Settings | None = None, *, clock: Callable[[], float] = time.monotonic) -> bool:
    """Whether every part is ok, from a report at most SUMMARY_CACHE_SECONDS old.

    Callers arriving together wait for one check instead of each starting their own.
    """
    try:
        settings = settings or get_settings()
    except SettingsError:
        return False
    with _summary_lock:
        cached = _summary.get(settings)
        if cached is not None and clock() - cached[0] < SUMMARY_CACHE_SECONDS:
            return cached[1]
        ok = build_report(settings).ok
        _summary.clear()  # one entry: settings change only in tests
        _summary[settings] = (clock(), ok)
        return ok


@dataclass(frozen=True)
class HealthAnswer:
    status: int
    document: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)

    def body(self) -> bytes:
        return json.dumps(self.document).encode("utf-8")


def answer(headers: Mapping[str, str]) -> HealthAnswer:
    """The answer to GET /api/health: up or down for anyone, the full report for a token with the read role."""
    from shared.auth.operator_tokens import bearer_token

    if bearer_token(headers) is None and not any(k.lower() == "authorization" for k in headers):
        ok = summary_ok()
        return HealthAnswer(200 if ok else 503, {"status": "ok" if ok else "failing"},
                            {"Cache-Control": f"max-age={int(SUMMARY_CACHE_SECONDS)}"})
    from shared.admin.base import ApiError, authenticate
    from shared.admin.routes import READ

    try:
        settings = get_settings()
    except SettingsError:  # no settings, no way to check a token: up or down only
        return HealthAnswer(503, {"status": "failing"})
    try:
        authenticate(settings, headers, READ)
    except ApiError as exc:
        return HealthAnswer(exc.status, {"error": exc.error, "message": exc.message}, dict(exc.headers))
    except SettingsError as exc:  # e.g. ADMIN_API_CLIENT_ID unset: no token can be checked
        return HealthAnswer(500, {"error": "misconfigured", "message": str(exc)})
    report = build_report(settings)
    return HealthAnswer(200 if report.ok else 503, report.as_dict(), {"Cache-Control": "no-store"})
