"""Where the investigation document is stored and how it is read back.

The investigating action writes it; the engine (for the actions that act on what it found), the
notification and the admin API read it. Kept apart from the action so readers need not import it.
The row sits in the alerts table beside the alert: RowKey ``investigation~<alert row>``, kind
``investigation``, property ``document`` (JSON).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from shared.alerts import Alert, row_key
from shared.names import ALERTS_TABLE

if TYPE_CHECKING:
    from shared.storage.tables import TableStore


def investigation_row(alert: Alert) -> tuple[str, str]:
    """(PartitionKey, RowKey) of the alert's investigation."""
    return alert.customer_tenant_id, "investigation~" + row_key(alert.key)


def load_investigation(store: TableStore, alert: Alert) -> dict[str, Any] | None:
    """The stored investigation document of this alert, or None when none ran."""
    partition, row = investigation_row(alert)
    entity = store.get(ALERTS_TABLE, partition, row)
    if entity is None or not entity.get("document"):
        return None
    document = json.loads(str(entity["document"]))
    return document if isinstance(document, dict) else None
