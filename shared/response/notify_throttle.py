"""At most one notification per subscription and alert category per window; the rest are counted.

State lives in the checkpoints table, partition ``notify_throttle``, one row per
``<subscription>~<category>`` (``~test`` appended for Microsoft test alerts, so a test never
silences a real alert). A message is *claimed* before it is sent (conditional write, so two
workers cannot both send) and *confirmed* after; a claim that was never confirmed stops
throttling after ``CLAIM_TIMEOUT``, so a send that crashed or failed for good does not silence the
subscription for the whole window. A claim carries what it must announce (the alerts held back
before it), so a retry of the same notification sends the same text.

Which notifications were handled (sent or held back) is recorded per notification target in
partition ``notify_done``: ``verify`` reads it, so a crash between sending and the ledger write
does not send twice.

A backlog's alerts of one subscription and category all meet the same row, one after another in
this process: the row as this process last wrote it (with its ETag) is tried first instead of a
read, and the process's writers to one row take turns. The write is conditional, so a row another
instance changed meanwhile is read again.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

from shared.alerts import Alert
from shared.formats import parse_time
from shared.locks import StripedLocks
from shared.names import CHECKPOINTS_TABLE
from shared.response.notify_message import Suppressed
from shared.storage.tables import Entity, TableStore, safe_key

THROTTLE_PARTITION: Final = "notify_throttle"
DONE_PARTITION: Final = "notify_done"
CLAIM_TIMEOUT: Final = timedelta(minutes=10)
MAX_KEPT_IDS: Final = 50
MAX_REMEMBERED_ROWS: Final = 4096
_ROW_LOCKS: Final = StripedLocks(64)
_LAST_WRITTEN: dict[tuple[str, str], Entity] = {}
"""(the table's address, row) -> the throttle row as this process last wrote it, ETag included."""


def default_hours(category: str) -> float:
    """The window when the policy gives none, as the category's source declares it (``shared.sources``):
    crypto-mining once a day, anything else once an hour."""
    from shared import sources

    return sources.throttle_hours(category)


def throttle_row(alert: Alert, *, test: bool) -> str:
    scope = alert.subscription_id or f"tenant-{alert.customer_tenant_id}"
    return f"{safe_key(scope)}~{alert.category}" + ("~test" if test else "")


@dataclass(frozen=True)
class Decision:
    """``send`` (announcing ``suppressed``) or ``throttle`` (this is the ``suppressed.count``-th held back)."""

    kind: Literal["send", "throttle"]
    suppressed: Suppressed


class NotifyThrottle:
    """Claim, confirm and release notification slots; record handled notifications."""

    def __init__(self, store: TableStore, *, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._store = store
        self._clock = clock

    # -- the window ----------------------------------------------------------------------------

    def decide(self, row: str, target_id: str, alert_key: str, hours: float) -> Decision:
        """Claim the slot for ``target_id`` or count it as held back (atomic per row)."""
        now = self._clock()
        window = timedelta(hours=hours)
        decided: list[Decision] = []

        def mutate(entity: dict[str, Any]) -> dict[str, Any] | None:
            decided.clear()
            if entity.get("last_target") == target_id:  # our own claim: a retry sends the same message
                decided.append(Decision("send", _announced(entity)))
                return None
            last = parse_time(entity.get("last_sent_at"))
            live = last is not None and (bool(entity.get("confirmed")) or now - last < CLAIM_TIMEOUT)
            targets = _ids(entity.get("suppressed_targets"))
            if window > timedelta(0) and live and last is not None and now - last < window:
                if target_id not in targets:
                    targets.append(target_id)
                    entity["suppressed"] = int(entity.get("suppressed") or 0) + 1
                entity["suppressed_targets"] = json.dumps(targets[-MAX_KEPT_IDS:])
                decided.append(Decision("throttle", Suppressed(int(entity["suppressed"]), last,
                                                              _alert_ids(targets))))
                return entity
            announce = Suppressed(int(entity.get("suppressed") or 0), last, _alert_ids(targets))
            entity.update({
                "prev_last_sent_at": entity.get("last_sent_at"), "prev_confirmed": bool(entity.get("confirmed")),
                "prev_last_target": entity.get("last_target", ""),
                "last_sent_at": now, "last_target": target_id, "last_alert": alert_key, "confirmed": False,
                "suppressed": 0, "suppressed_targets": "[]",
                "announce_count": announce.count, "announce_since": last,
                "announce_targets": json.dumps(targets[-MAX_KEPT_IDS:]),
            })
            decided.append(Decision("send", announce))
            return {k: v for k, v in entity.items() if v is not None}

        self._update(row, mutate)
        return decided[-1]

    def confirm(self, row: str, target_id: str) -> None:
        """The claimed message went out: the window now runs from its claim."""
        def mutate(entity: dict[str, Any]) -> dict[str, Any] | None:
            if entity.get("last_target") != target_id:
                return None
            entity["confirmed"] = True
            return entity

        self._update(row, mutate)

    def release(self, row: str, target_id: str) -> None:
        """The claimed message failed for good: give the slot back and keep counting what it announced."""
        def mutate(entity: dict[str, Any]) -> dict[str, Any] | None:
            if entity.get("last_target") != target_id:
                return None
            announced = _ids(entity.get("announce_targets"))
            held = _ids(entity.get("suppressed_targets"))
            restored = {
                **{k: v for k, v in entity.items() if k not in ("last_sent_at", "announce_since")},
                "last_target": entity.get("prev_last_target", ""), "confirmed": bool(entity.get("prev_confirmed")),
                "suppressed": int(entity.get("announce_count") or 0) + int(entity.get("suppressed") or 0),
                "suppressed_targets": json.dumps((announced + held)[-MAX_KEPT_IDS:]),
                "announce_count": 0, "announce_targets": "[]",
            }
            if entity.get("prev_last_sent_at") is not None:
                restored["last_sent_at"] = entity["prev_last_sent_at"]
            return restored

        self._update(row, mutate)

    def _update(self, row: str, mutate: Callable[[dict[str, Any]], dict[str, Any] | None]) -> None:
        """``mutate`` the throttle row, starting from the row as this process last wrote it."""
        key = (self._store.table_url(CHECKPOINTS_TABLE), row)
        with _ROW_LOCKS.for_key(*key):
            written = self._store.update_with_retry(CHECKPOINTS_TABLE, THROTTLE_PARTITION, row, mutate,
                                                    read=_LAST_WRITTEN.get(key))
            if written is not None and getattr(written, "metadata", None):
                _LAST_WRITTEN[key] = written
                if len(_LAST_WRITTEN) > MAX_REMEMBERED_ROWS:
                    _LAST_WRITTEN.pop(next(iter(_LAST_WRITTEN)), None)
            else:  # created, or left as it was: read it next time
                _LAST_WRITTEN.pop(key, None)

    # -- handled notifications -------------------------------------------------------------------

    def record_done(self, target_id: str, *, outcome: str, detail: dict[str, Any]) -> None:
        self._store.upsert(CHECKPOINTS_TABLE, {
            "PartitionKey": DONE_PARTITION, "RowKey": safe_key(target_id), "outcome": outcome,
            "at": self._clock(), "detail": json.dumps(detail, default=str)[:30000],
        }, mode="replace")

    def done(self, target_id: str) -> dict[str, Any] | None:
        """What happened to this notification ({"outcome", "at", "detail"}), or None if never handled."""
        entity = self._store.get(CHECKPOINTS_TABLE, DONE_PARTITION, safe_key(target_id))
        if entity is None:
            return None
        return {"outcome": entity.get("outcome", ""), "at": entity.get("at"),
                "detail": json.loads(entity.get("detail") or "{}")}

    def state(self, row: str) -> dict[str, Any] | None:
        """The throttle row as stored (for operators and tests)."""
        entity = self._store.get(CHECKPOINTS_TABLE, THROTTLE_PARTITION, row)
        return dict(entity) if entity is not None else None


def _announced(entity: dict[str, Any]) -> Suppressed:
    return Suppressed(int(entity.get("announce_count") or 0), parse_time(entity.get("announce_since")),
                      _alert_ids(_ids(entity.get("announce_targets"))))


def _ids(value: Any) -> list[str]:
    try:
        parsed = json.loads(value) if isinstance(value, str) and value else []
    except json.JSONDecodeError:
        return []
    return [str(v) for v in parsed] if isinstance(parsed, list) else []


def _alert_ids(target_ids: list[str]) -> tuple[str, ...]:
    """Alert keys from notification target ids (``<alert key>#v<version>``), first seen first."""
    seen: dict[str, None] = {}
    for target in target_ids:
        seen.setdefault(target.rsplit("#v", 1)[0], None)
    return tuple(seen)
