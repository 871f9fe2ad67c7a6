"""Sync checkpoints and token health, kept in the checkpoints table.

Token health is what an operator most needs to see early: an expired or MFA-stale Secure
Application Model refresh token silently stops every poll (the top complaint about peer tools).
"""

from __future__ import annotations

import functools
import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from shared.names import CHECKPOINTS_TABLE
from shared.storage.tables import TableStore

if TYPE_CHECKING:
    from shared.settings import Settings

SYNC_PARTITION = "sync"
SOURCE_PARTITION = "source"
TOKEN_PARTITION = "token_health"  # noqa: S105 - a partition name, not a secret
WRITE_PRINCIPAL: Final = "refresh_token_write"
"""Token-health row of the refresh token write-back to Key Vault (see ``record_refresh_token_write``)."""
NOT_PERSISTED_KIND: Final = "refresh_token_not_persisted"


def record_sync(store: TableStore, *, trigger: str, result: dict[str, Any], error: str = "") -> None:
    """The latest run per trigger (timer, webhook, cli), with its counts and duration."""
    now = datetime.now(UTC)
    store.upsert(CHECKPOINTS_TABLE, {
        "PartitionKey": SYNC_PARTITION, "RowKey": trigger, "at": now, "ok": not error, "error": error[:1000],
        "result": json.dumps(result, default=str)[:30000],
    }, mode="replace")


def record_token_health(store: TableStore, *, principal: str, ok: bool, detail: dict[str, Any] | None = None) -> None:
    """``principal``: partner_center, graph_app, or customer:<tenant>. ``detail`` is log-safe."""
    now = datetime.now(UTC)
    entity: dict[str, Any] = {"PartitionKey": TOKEN_PARTITION, "RowKey": principal, "ok": ok, "checked_at": now}
    if ok:
        entity["last_ok_at"] = now
    else:
        entity.update({"failed_at": now, "detail": json.dumps(detail or {}, default=str)[:8000]})
    store.upsert(CHECKPOINTS_TABLE, entity, mode="merge")


def token_health(store: TableStore) -> list[dict[str, Any]]:
    rows = []
    for entity in store.list_partition(CHECKPOINTS_TABLE, TOKEN_PARTITION):
        rows.append({
            "principal": entity["RowKey"], "ok": bool(entity.get("ok")), "checked_at": entity.get("checked_at"),
            "last_ok_at": entity.get("last_ok_at"), "failed_at": entity.get("failed_at"),
            "detail": json.loads(entity.get("detail") or "{}") if not entity.get("ok") else {},
        })
    return rows


def last_syncs(store: TableStore) -> list[dict[str, Any]]:
    return [{"trigger": e["RowKey"], "at": e.get("at"), "ok": e.get("ok"), "error": e.get("error", ""),
             "result": json.loads(e.get("result") or "{}")} for e in store.list_partition(CHECKPOINTS_TABLE,
                                                                                           SYNC_PARTITION)]


def record_source(store: TableStore, *, source: str, trigger: str, ok: bool, error: str = "",
                  result: dict[str, Any] | None = None) -> None:
    """The latest outcome per source (partner_center, graph), whichever trigger ran it: one
    failing source is visible on its own while the others keep syncing."""
    now = datetime.now(UTC)
    entity: dict[str, Any] = {"PartitionKey": SOURCE_PARTITION, "RowKey": source, "at": now, "ok": ok,
                              "trigger": trigger, "error": error[:2000],
                              "result": json.dumps(result or {}, default=str)[:30000]}
    if ok:
        entity["last_ok_at"] = now
    else:
        entity["failed_at"] = now
    store.upsert(CHECKPOINTS_TABLE, entity, mode="merge")


def source_syncs(store: TableStore) -> list[dict[str, Any]]:
    """Each source's latest sync: ok, error, when it last succeeded and last failed."""
    return [{"source": e["RowKey"], "ok": bool(e.get("ok")), "at": e.get("at"), "trigger": e.get("trigger", ""),
             "error": "" if e.get("ok") else e.get("error", ""), "last_ok_at": e.get("last_ok_at"),
             "failed_at": e.get("failed_at"), "result": json.loads(e.get("result") or "{}")}
            for e in store.list_partition(CHECKPOINTS_TABLE, SOURCE_PARTITION)]


def record_refresh_token_write(settings: Settings, *, ok: bool, message: str = "") -> None:
    """Record the write-back outcome (``shared.auth.partner_tokens``): a failure raises token health,
    a later success clears it. ``message`` is log-safe (no token).

    Here, below both the token provider and the token status report, so neither imports the other.
    """
    store = _store(settings)
    if ok:
        store.delete(CHECKPOINTS_TABLE, TOKEN_PARTITION, WRITE_PRINCIPAL)
    else:
        record_token_health(store, principal=WRITE_PRINCIPAL, ok=False,
                            detail={"kind": NOT_PERSISTED_KIND, "code": None, "message": message})


@functools.lru_cache(maxsize=4)
def _store(settings: Settings) -> TableStore:
    return TableStore(settings)
