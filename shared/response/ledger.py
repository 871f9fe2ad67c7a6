"""The action ledger: one row per alert x action x target, the audit trail and the claim-once lock.

Why a ledger: queue delivery is at-least-once, but an action must take effect exactly once per
target. The row is claimed with an insert-once (409 for the loser) BEFORE the external call, and
every later state change is conditional on the row's ETag, so two workers (or a worker and an
operator) can never both run one row.

Keys: PartitionKey is the alert's safe key (``alerts.row_key(alert.key)``), so one alert's rows
are one partition; RowKey is ``{action}~{target kind}~{safe target id}``. ``action_id`` is a short
stable id (10 hex characters of sha256 of the keys) for operators to type.

States::

    planned            claimed, not started (treated like running with a free lease)
    awaiting-approval  mode approve: waits for `fraud-responder actions approve|reject ID`
    running            being executed (``lease_until`` / ``lease_owner`` say by whom and how long)
    succeeded          done (``already_done`` when verify found the target already in that state)
    failed             permanent failure (``error``); `actions approve ID` retries it
    dry-run            mode dry-run: the plan is recorded, nothing was called
    rejected           an operator refused it
    undoing            an operator's undo is in progress
    undone             reversed by an operator (``undo_summary``, ``undo_data``)
    undo-failed        the undo failed (``error``); `actions undo ID` tries again
    expired            waited for approval, but the alert was resolved as legitimate or ignore
                       (``expired_by``, ``expired_reason``): approve refuses it; a new version of
                       the alert asks again

``called_at`` is written (conditionally, under the row's lease) just before the external call, so a
row retaken after a crash tells "we may have called" from "we never called". ``found_state`` says
the target was already in the wanted state when the responder looked and it did nothing: undo
refuses such a row (it would reverse what the responder did not do).

Operators' decisions (resolve, approve, reject, undo, expire) are also appended, one record each,
to the decisions table (``shared.response.decisions``): a row holds the latest state, the
decisions table its history.

Rows never hold secrets: ``error`` is one line from our own typed errors, ``data`` is what the
action returned for undo (ids, never secret values).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from shared.alerts import Alert, row_key
from shared.errors import FraudResponderError
from shared.formats import one_line
from shared.names import LEDGER_TABLE
from shared.response.actions.base import Target
from shared.storage.tables import ConcurrencyConflict, Entity, TableStore, as_stored, etag_of, safe_key, storable

PLANNED: Final = "planned"
AWAITING_APPROVAL: Final = "awaiting-approval"
RUNNING: Final = "running"
SUCCEEDED: Final = "succeeded"
FAILED: Final = "failed"
DRY_RUN: Final = "dry-run"
REJECTED: Final = "rejected"
UNDOING: Final = "undoing"
UNDONE: Final = "undone"
UNDO_FAILED: Final = "undo-failed"
EXPIRED: Final = "expired"
STATES: Final = (PLANNED, AWAITING_APPROVAL, RUNNING, SUCCEEDED, FAILED, DRY_RUN, REJECTED, UNDOING, UNDONE,
                 UNDO_FAILED, EXPIRED)

_MAX_ERROR = 500
_MAX_JSON = 30_000  # Table Storage caps a string property at 32K UTF-16 characters


class LedgerConflict(FraudResponderError):
    """The row changed under us (another worker or operator): re-read it; the message says what."""

    http_status = 409
    error_code = "conflict"
    retryable = True


def now_utc() -> datetime:
    return datetime.now(UTC)


def action_id_for(partition: str, row: str) -> str:
    """The operator-facing id of a row: stable, short, derived from its keys."""
    return hashlib.sha256(f"{partition}/{row}".encode()).hexdigest()[:10]


def ledger_keys(alert_key: str, action: str, target: Target) -> tuple[str, str]:
    return row_key(alert_key), f"{action}~{safe_key(target.kind)}~{safe_key(target.id)}"


def _dumps(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    if len(text) > _MAX_JSON:
        return json.dumps({"truncated": True, "chars": len(text)})
    return text


def _loads(text: Any) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(str(text))
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {"value": value}


@dataclass(frozen=True)
class LedgerEntry:
    """One ledger row, typed; ``etag`` is what a conditional update of it needs."""

    partition: str
    row: str
    action_id: str
    alert_key: str
    alert_id: str
    alert_partition: str
    alert_row: str
    customer_tenant_id: str
    subscription_id: str
    action: str
    target: Target
    mode: str
    state: str
    attempts: int
    created_at: datetime | None
    updated_at: datetime | None
    actor: str
    rule: str
    reason: str
    version: int
    params: dict[str, Any] = field(default_factory=dict)
    summary: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    already_done: bool = False
    approved_by: str = ""
    rejected_by: str = ""
    reject_reason: str = ""
    undone_by: str = ""
    undo_summary: str = ""
    undo_data: dict[str, Any] = field(default_factory=dict)
    lease_owner: str = ""
    lease_until: datetime | None = None
    called_at: datetime | None = None
    found_state: str = ""
    expired_by: str = ""
    expired_reason: str = ""
    etag: str = ""
    entity: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    """The row as read (or as written) at ``etag``: a merge onto it is the row's next state."""

    @classmethod
    def from_entity(cls, entity: Mapping[str, Any]) -> LedgerEntry:
        try:
            etag = etag_of(entity)
        except ValueError:
            etag = ""
        target = Target(kind=str(entity.get("target_kind", "")), id=str(entity.get("target_id", "")),
                        display=str(entity.get("target_display", "")), tenant=str(entity.get("target_tenant", "")),
                        details=_loads(entity.get("target_details")))
        return cls(
            partition=str(entity["PartitionKey"]), row=str(entity["RowKey"]),
            action_id=str(entity.get("action_id", "")), alert_key=str(entity.get("alert_key", "")),
            alert_id=str(entity.get("alert_id", "")), alert_partition=str(entity.get("alert_partition", "")),
            alert_row=str(entity.get("alert_row", "")),
            customer_tenant_id=str(entity.get("customer_tenant_id", "")),
            subscription_id=str(entity.get("subscription_id", "")), action=str(entity.get("action", "")),
            target=target, mode=str(entity.get("mode", "")), state=str(entity.get("state", "")),
            attempts=int(entity.get("attempts", 0) or 0), created_at=entity.get("created_at"),
            updated_at=entity.get("updated_at"), actor=str(entity.get("actor", "")),
            rule=str(entity.get("rule", "")), reason=str(entity.get("reason", "")),
            version=int(entity.get("version", 0) or 0), params=_loads(entity.get("params")),
            summary=str(entity.get("summary", "")), data=_loads(entity.get("data")),
            error=str(entity.get("error", "")), already_done=bool(entity.get("already_done", False)),
            approved_by=str(entity.get("approved_by", "")), rejected_by=str(entity.get("rejected_by", "")),
            reject_reason=str(entity.get("reject_reason", "")), undone_by=str(entity.get("undone_by", "")),
            undo_summary=str(entity.get("undo_summary", "")), undo_data=_loads(entity.get("undo_data")),
            lease_owner=str(entity.get("lease_owner", "")), lease_until=entity.get("lease_until"),
            called_at=entity.get("called_at") or None, found_state=str(entity.get("found_state", "") or ""),
            expired_by=str(entity.get("expired_by", "") or ""),
            expired_reason=str(entity.get("expired_reason", "") or ""), etag=etag, entity=entity,
        )

    def lease_free(self, now: datetime) -> bool:
        return self.lease_until is None or self.lease_until <= now

    def as_json(self) -> dict[str, Any]:
        """The stable JSON shape (CLI --json, the admin API): fields are only ever added."""
        def iso(value: datetime | None) -> str | None:
            return value.isoformat() if isinstance(value, datetime) else None

        return {
            "id": self.action_id, "alert": self.alert_key, "customer_tenant_id": self.customer_tenant_id,
            "subscription_id": self.subscription_id, "action": self.action,
            "target": {"kind": self.target.kind, "id": self.target.id, "display": self.target.display,
                       "tenant": self.target.tenant, "details": self.target.details},
            "mode": self.mode, "state": self.state, "attempts": self.attempts, "actor": self.actor,
            "rule": self.rule, "reason": self.reason, "version": self.version, "summary": self.summary,
            "already_done": self.already_done, "data": public_data(self.data), "error": self.error,
            "approved_by": self.approved_by, "rejected_by": self.rejected_by, "reject_reason": self.reject_reason,
            "undone_by": self.undone_by, "undo_summary": self.undo_summary, "undo_data": self.undo_data,
            "created_at": iso(self.created_at), "updated_at": iso(self.updated_at),
            "found_state": self.found_state, "expired_by": self.expired_by, "expired_reason": self.expired_reason,
        }


PERSONAL_DATA: Final = "personal_data"
"""Key of an outcome's data that holds personal data (admins' recovery e-mails and phone numbers): kept in
the ledger for the partner's incident record, left out of ``as_json`` (CLI, admin API) and notifications."""


def public_data(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` without its personal-data part (see :data:`PERSONAL_DATA`)."""
    if PERSONAL_DATA not in data:
        return data
    return {**{k: v for k, v in data.items() if k != PERSONAL_DATA},
            PERSONAL_DATA: "withheld: in the incident record (incident export) only"}


@dataclass(frozen=True)
class NewRow:
    """What the engine knows when it claims a row."""

    alert: Alert
    alert_partition: str
    alert_row: str
    action: str
    target: Target
    mode: str
    state: str
    actor: str
    rule: str
    reason: str
    version: int
    params: Mapping[str, Any]
    lease_owner: str = ""
    lease_until: datetime | None = None


class Ledger:
    """Claims and state changes of ledger rows, on the ledger table of ``store``."""

    def __init__(self, store: TableStore, *, clock: Callable[[], datetime] = now_utc) -> None:
        self._store = store
        self._clock = clock

    # --- reads ---------------------------------------------------------------------------------

    def get(self, partition: str, row: str) -> LedgerEntry | None:
        entity = self._store.get(LEDGER_TABLE, partition, row)
        return LedgerEntry.from_entity(entity) if entity is not None else None

    def find(self, action_id: str) -> LedgerEntry | None:
        """The row an operator means by ``action_id``; LookupError when it is ambiguous."""
        wanted = action_id.strip().lower()
        found = [LedgerEntry.from_entity(e) for page in self._store.query(LEDGER_TABLE, "action_id eq @id",
                                                                          {"id": wanted}) for e in page.entities]
        if len(found) > 1:
            raise LookupError(f"action id {wanted} names {len(found)} rows; use `actions list --alert` to tell "
                              "them apart")
        return found[0] if found else None

    def for_alert(self, alert_key: str) -> list[LedgerEntry]:
        """Every row of one alert (one partition), in RowKey order."""
        return [LedgerEntry.from_entity(e) for e in self._store.list_partition(LEDGER_TABLE, row_key(alert_key))]

    def query(self, *, states: tuple[str, ...] = (), alert: str | None = None) -> Iterator[LedgerEntry]:
        """Rows in any of ``states`` (all when empty), of one alert (its key or bare id) when given."""
        clauses: list[str] = []
        params: dict[str, Any] = {}
        if states:
            names = [f"s{i}" for i in range(len(states))]
            # spaces around each @name: the SDK substitutes parameters word by word
            clauses.append("( " + " or ".join(f"state eq @{n}" for n in names) + " )")
            params.update(dict(zip(names, states, strict=True)))
        if alert:
            clauses.append("( alert_key eq @alert or alert_id eq @alert )")
            params["alert"] = alert
        for page in self._store.query(LEDGER_TABLE, " and ".join(clauses) or None, params):
            for entity in page.entities:
                yield LedgerEntry.from_entity(entity)

    # --- writes --------------------------------------------------------------------------------

    def claim(self, new: NewRow) -> tuple[bool, LedgerEntry]:
        """Insert the row if there is none (True) or return the stored one (False): the claim-once lock."""
        partition, row = ledger_keys(new.alert.key, new.action, new.target)
        now = self._clock()
        entity: Entity = {
            "PartitionKey": partition, "RowKey": row, "action_id": action_id_for(partition, row),
            "alert_key": new.alert.key, "alert_id": new.alert.id, "alert_partition": new.alert_partition,
            "alert_row": new.alert_row, "customer_tenant_id": new.alert.customer_tenant_id,
            "subscription_id": new.alert.subscription_id, "action": new.action,
            "target_kind": new.target.kind, "target_id": new.target.id, "target_display": new.target.display,
            "target_tenant": new.target.tenant, "target_details": _dumps(new.target.details),
            "mode": new.mode, "state": new.state, "attempts": 1 if new.state == RUNNING else 0,
            "created_at": now, "updated_at": now, "actor": new.actor, "rule": new.rule,
            "reason": one_line(new.reason, 1000), "version": new.version,
            "params": _dumps({k: list(v) if isinstance(v, tuple) else v for k, v in new.params.items()}),
            "lease_owner": new.lease_owner,
        }
        if new.lease_until is not None:
            entity["lease_until"] = new.lease_until
        written = self._store.create(LEDGER_TABLE, entity)
        if written is not None:
            return True, LedgerEntry.from_entity(written)
        stored = self.get(partition, row)
        if stored is None:  # deleted between the insert and the read: nothing sensible to do but retry
            raise LedgerConflict(f"ledger row {row} of {new.alert.key} vanished right after it was claimed")
        return False, stored

    def transition(self, entry: LedgerEntry, changes: Mapping[str, Any]) -> LedgerEntry:
        """Apply ``changes`` only if the row still has the ETag ``entry`` was read with.

        Raises LedgerConflict when someone else changed it first (so two workers can't both run it).
        """
        values = dict(changes)
        for name in ("data", "undo_data", "target_details", "params"):
            if name in values and not isinstance(values[name], str):
                values[name] = _dumps(values[name])
        if "error" in values:
            values["error"] = one_line(values["error"])
        values.update(PartitionKey=entry.partition, RowKey=entry.row, updated_at=self._clock())
        sent = storable(values)
        try:
            etag = self._store.update_with_etag(LEDGER_TABLE, sent, entry.etag, mode="merge")
        except ConcurrencyConflict:
            raise LedgerConflict(f"action {entry.action_id} ({entry.action} on {entry.target.kind} "
                                 f"{entry.target.display or entry.target.id}) was changed by another worker or "
                                 "operator; list it again to see its state") from None
        if entry.entity:  # the write was conditional on the row as read: the merge is its new state, known whole
            return LedgerEntry.from_entity(as_stored(sent, etag, onto=entry.entity))
        stored = self.get(entry.partition, entry.row)
        if stored is None:
            raise LedgerConflict(f"action {entry.action_id} was deleted while it was being updated")
        return stored

    def lease(self, owner: str, seconds: float) -> dict[str, Any]:
        """The properties that hold a row for ``owner`` for ``seconds``."""
        return {"lease_owner": owner, "lease_until": self._clock() + timedelta(seconds=seconds)}

    def released(self) -> dict[str, Any]:
        """The properties that free a row's lease now (an attempt ended without a crash)."""
        return {"lease_owner": "", "lease_until": self._clock()}
