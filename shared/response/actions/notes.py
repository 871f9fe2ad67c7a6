"""Action notes: small facts an action writes down *before* an external call, per alert and target.

The engine writes the ledger row only after ``execute`` returns, so anything undo or crash
recovery needs must not live only in ``Outcome.data``: a crash between the external call and the
ledger write would lose it. Two facts need this:

* stop_resources: the power state a VM had before we stopped it (written once, first observation
  wins, so a retry after a crash, when the VM is already deallocated, still knows it was running);
* rotate_credentials: the key id of the credential whose secret reached Key Vault (so a retry can
  tell "added and stored" from "added, secret lost").

Notes live in the alerts table, in the customer's partition beside the alert, with ``kind``
``action_note``; they hold ids and states only, never secret values.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from shared.alerts import Alert, row_key
from shared.names import ALERTS_TABLE
from shared.response.actions.base import Target
from shared.storage.tables import TableStore

NOTE_KIND = "action_note"


def note_keys(action: str, alert: Alert, target: Target) -> tuple[str, str]:
    """(PartitionKey, RowKey) of the note for this action, alert and target.

    Target ids (ARM ids hold slashes) are hashed, case-insensitively, as ARM compares them.
    """
    digest = hashlib.sha256(f"{target.kind}|{target.id.lower()}".encode()).hexdigest()[:32]
    return alert.customer_tenant_id, f"note~{action}~{row_key(alert.key)}~{digest}"


def read_note(store: TableStore, action: str, alert: Alert, target: Target) -> dict[str, Any] | None:
    """The note's data, or None when none was written."""
    partition, row = note_keys(action, alert, target)
    entity = store.get(ALERTS_TABLE, partition, row)
    if entity is None:
        return None
    data = json.loads(str(entity.get("data") or "{}"))
    return data if isinstance(data, dict) else None


def _entity(action: str, alert: Alert, target: Target, data: dict[str, Any]) -> dict[str, Any]:
    partition, row = note_keys(action, alert, target)
    return {"PartitionKey": partition, "RowKey": row, "kind": NOTE_KIND, "action": action, "alert_key": alert.key,
            "target_kind": target.kind, "target_id": target.id, "data": json.dumps(data, sort_keys=True)}


def write_note_once(store: TableStore, action: str, alert: Alert, target: Target,
                    data: dict[str, Any]) -> dict[str, Any]:
    """Write the note unless one exists; returns the stored data (the first writer's)."""
    if store.insert_once(ALERTS_TABLE, _entity(action, alert, target, data)):
        return data
    stored = read_note(store, action, alert, target)
    return stored if stored is not None else data


def write_note(store: TableStore, action: str, alert: Alert, target: Target, data: dict[str, Any]) -> None:
    """Write (or replace) the note."""
    store.upsert(ALERTS_TABLE, _entity(action, alert, target, data), mode="replace")
