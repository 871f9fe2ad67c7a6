"""Operators' decisions, append-only: every resolve, approve, reject, undo and expiry is its own record.

Why: a ledger row holds the latest state of one action, and an alert row its latest status, so a
second decision (resolved as legitimate by one operator, then as fraud by another) would overwrite
the first. The decisions table keeps each one: records are only ever inserted (a fresh RowKey per
decision, insert-once), never updated, so the history of an alert cannot be rewritten by the app.

Keys: PartitionKey is the alert's safe key (one partition per alert, like the ledger); RowKey is the
UTC time of the decision plus a random suffix, so a partition lists oldest first.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from shared.alerts import row_key
from shared.formats import one_line
from shared.names import DECISIONS_TABLE
from shared.storage.tables import TableStore

KINDS: Final = ("resolve", "approve", "reject", "undo", "expire")


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class DecisionRecord:
    """One decision as recorded: who (``operator``), when (``at``), what, on which action, and why."""

    alert_key: str
    kind: str
    operator: str
    at: datetime | None
    reason: str = ""
    action_id: str = ""
    action: str = ""
    target: str = ""
    outcome: str = ""
    """What the decision led to: the row's state after it, or the status written at the source."""
    row: str = ""

    @classmethod
    def from_entity(cls, entity: Mapping[str, Any]) -> DecisionRecord:
        return cls(alert_key=str(entity.get("alert_key", "")), kind=str(entity.get("kind", "")),
                   operator=str(entity.get("operator", "")), at=entity.get("at"),
                   reason=str(entity.get("reason", "")), action_id=str(entity.get("action_id", "")),
                   action=str(entity.get("action", "")), target=str(entity.get("target", "")),
                   outcome=str(entity.get("outcome", "")), row=str(entity.get("RowKey", "")))

    def as_json(self) -> dict[str, Any]:
        """The stable JSON shape (CLI --json, the admin API): fields are only ever added."""
        return {"alert": self.alert_key, "decision": self.kind, "operator": self.operator,
                "at": self.at.isoformat() if isinstance(self.at, datetime) else None, "reason": self.reason,
                "action_id": self.action_id, "action": self.action, "target": self.target, "outcome": self.outcome}


def record(store: TableStore, *, alert_key: str, kind: str, operator: str, reason: str = "", action_id: str = "",
           action: str = "", target: str = "", outcome: str = "",
           clock: Callable[[], datetime] = _now) -> DecisionRecord:
    """Append one decision (insert-only); storage errors propagate (a decision must not go unrecorded)."""
    if kind not in KINDS:
        raise ValueError(f"decision kind must be one of {', '.join(KINDS)}, not {kind!r}")
    at = clock()
    row = f"{at.astimezone(UTC):%Y%m%dT%H%M%S.%fZ}~{uuid.uuid4().hex[:12]}"
    entity: dict[str, Any] = {
        "PartitionKey": row_key(alert_key), "RowKey": row, "alert_key": alert_key, "kind": kind,
        "operator": operator, "at": at, "reason": one_line(reason, 1000), "action_id": action_id,
        "action": action, "target": target[:1000], "outcome": one_line(outcome, 1000),
    }
    if not store.insert_once(DECISIONS_TABLE, entity):  # a fresh random RowKey: a clash means a defect
        raise RuntimeError(f"decision record {row} of {alert_key} already exists")
    return DecisionRecord.from_entity(entity)


def for_alert(store: TableStore, alert_key: str) -> list[DecisionRecord]:
    """Every decision on one alert (its ``source:id`` key), oldest first."""
    return [DecisionRecord.from_entity(e) for e in store.list_partition(DECISIONS_TABLE, row_key(alert_key))]
