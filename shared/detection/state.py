"""Detection checkpoints and detector state: one partition per subject, committed in one transaction.

Layout (``shared.names.DETECTION_TABLE``): PartitionKey = the subscription id (or ``~partner``);
RowKey ``checkpoint`` (how far the readings were judged, the ids already counted in the overlap
window, the regions known) and ``state-<detector>`` (what the detector returned last time).

Why one partition and one transaction: the checkpoint and every detector's state must move
together. Were the states written and the checkpoint not (a crash between two writes), the next
run would judge the same events against states that already counted them. An entity-group
transaction commits all or nothing, each row under the ETag it was read with (a new row with
``create``), so of two workers that judged the same subscription at once only one commits; the
other's findings were stored idempotently and its state is dropped (``StateConflict``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from shared.errors import FraudResponderError
from shared.formats import parse_time
from shared.names import DETECTION_TABLE
from shared.storage.tables import TableStore

PARTNER_PARTITION: Final = "~partner"
CHECKPOINT_ROW: Final = "checkpoint"
STATE_PREFIX: Final = "state-"
CHUNK_CHARS: Final = 30_000
MAX_CHUNKS: Final = 15
MAX_REGIONS: Final = 60


class StateConflict(FraudResponderError, RuntimeError):
    """Another worker committed this subject's checkpoint first: this run's state is dropped."""


@dataclass
class Checkpoint:
    """How far a subject's readings have been judged."""

    until: datetime | None = None
    """Readings before this were judged (the next read starts an overlap before it); None: never run."""
    seen: dict[str, str] = field(default_factory=dict)
    """Ids counted within the overlap window -> their time (ISO): dropped when read again."""
    regions: tuple[str, ...] = ()
    """Regions seen in this subscription (its quotas are read every run)."""
    runs: int = 0
    etag: str = ""


@dataclass
class Stored:
    """A subject's checkpoint and detector states as read, with their ETags."""

    partition: str
    checkpoint: Checkpoint
    states: dict[str, dict[str, Any]] = field(default_factory=dict)
    etags: dict[str, str] = field(default_factory=dict)


def partition_of(subscription_id: str | None) -> str:
    return subscription_id.lower() if subscription_id else PARTNER_PARTITION


def load(store: TableStore, partition: str) -> Stored:
    """One query: the subject's checkpoint and every detector's state."""
    stored = Stored(partition=partition, checkpoint=Checkpoint())
    for entity in store.list_partition(DETECTION_TABLE, partition):
        row = str(entity["RowKey"])
        etag = str(entity.metadata.get("etag", "")) if hasattr(entity, "metadata") else ""
        if row == CHECKPOINT_ROW:
            seen = _unpack(entity, "seen")
            stored.checkpoint = Checkpoint(
                until=parse_time(entity.get("until")),
                seen={str(k): str(v) for k, v in seen.items()} if isinstance(seen, dict) else {},
                regions=tuple(json.loads(entity.get("regions") or "[]")), runs=int(entity.get("runs", 0)),
                etag=etag)
        elif row.startswith(STATE_PREFIX):
            state = _unpack(entity, "state")
            stored.states[row[len(STATE_PREFIX):]] = state if isinstance(state, dict) else {}
            stored.etags[row] = etag
    return stored


def commit(store: TableStore, stored: Stored, checkpoint: Checkpoint, states: dict[str, Any],
           *, extra: dict[str, Any] | None = None) -> None:
    """Write the new checkpoint and the detectors' new states, all or nothing, under the ETags read.

    :raises StateConflict: another worker committed first (or a row is too large: never half-written).
    """
    from azure.core import MatchConditions
    from azure.core.exceptions import HttpResponseError
    from azure.data.tables import TableTransactionError, UpdateMode

    operations: list[tuple[Any, ...]] = []

    def add(row: str, entity: dict[str, Any], etag: str) -> None:
        entity = {"PartitionKey": stored.partition, "RowKey": row, **entity}
        if etag:
            operations.append(("update", entity, {"mode": UpdateMode.REPLACE, "etag": etag,
                                                  "match_condition": MatchConditions.IfNotModified}))
        else:
            operations.append(("create", entity))

    for name, state in states.items():
        row = STATE_PREFIX + name
        add(row, {**_pack("state", state), "detector": name}, stored.etags.get(row, ""))
    add(CHECKPOINT_ROW, {"until": checkpoint.until, **_pack("seen", checkpoint.seen),
                         "regions": json.dumps(list(checkpoint.regions[-MAX_REGIONS:])), "runs": checkpoint.runs,
                         **(extra or {})}, stored.checkpoint.etag)
    client = store.table_client(DETECTION_TABLE)
    try:
        client.submit_transaction(operations)
    except (TableTransactionError, HttpResponseError) as exc:
        status = getattr(exc, "status_code", None)
        if status in (409, 412):
            raise StateConflict(f"detection state of {stored.partition} was committed by another worker "
                                "first; this run's state is dropped (its findings are stored)") from None
        raise


def _pack(name: str, value: Any) -> dict[str, Any]:
    text = json.dumps(value, sort_keys=True, default=str)
    chunks = [text[i : i + CHUNK_CHARS] for i in range(0, len(text), CHUNK_CHARS)] or [""]
    if len(chunks) > MAX_CHUNKS:
        raise ValueError(f"{name} is {len(text)} characters of JSON; at most {CHUNK_CHARS * MAX_CHUNKS}")
    return {f"{name}_chunks": len(chunks), **{f"{name}_{i}": chunk for i, chunk in enumerate(chunks)}}


def _unpack(entity: Any, name: str) -> Any:
    text = "".join(str(entity.get(f"{name}_{i}", "")) for i in range(int(entity.get(f"{name}_chunks", 0))))
    return json.loads(text) if text else {}
