"""Read models for operators: the stable JSON shape of an alert, and alert queries.

The JSON shape is a contract (the CLI's --json and the admin API): fields are only ever added.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

from shared.alerts import row_key
from shared.formats import iso
from shared.names import ALERTS_TABLE
from shared.storage.tables import TableStore

ALERT_JSON_FIELDS = (
    "id", "key", "source", "customer_tenant_id", "customer_name", "subscription_id", "subscription_name",
    "type", "category", "status", "severity", "confidence", "is_test", "hit_count", "display_name",
    "detected_at", "first_observed_at", "last_observed_at", "affected_resources", "resolved_reason",
    "resolved_by", "resolved_at", "version", "changed_at", "change_reasons",
)


def alert_json(entity: Mapping[str, Any], *, detail: bool = False) -> dict[str, Any]:
    """One alert row as the documented JSON object (``detail`` adds description and details)."""
    doc: dict[str, Any] = {
        "id": entity.get("alert_id", ""),
        "key": f"{entity.get('source', '')}:{entity.get('alert_id', '')}",
        "source": entity.get("source", ""),
        "customer_tenant_id": entity.get("customer_tenant_id", entity.get("PartitionKey", "")),
        "customer_name": entity.get("customer_name", ""),
        "subscription_id": entity.get("subscription_id", ""),
        "subscription_name": entity.get("subscription_name", ""),
        "type": entity.get("type", ""),
        "category": entity.get("category", ""),
        "status": entity.get("status", ""),
        "severity": entity.get("severity", ""),
        "confidence": entity.get("confidence", ""),
        "is_test": bool(entity.get("is_test", False)),
        "hit_count": entity.get("hit_count"),
        "display_name": entity.get("display_name", ""),
        "detected_at": iso(entity.get("detected_at")),
        "first_observed_at": iso(entity.get("first_observed_at")),
        "last_observed_at": iso(entity.get("last_observed_at")),
        "affected_resources": [{"id": r[0], "type": r[1]} for r in json.loads(entity.get("affected_resources")
                                                                              or "[]")],
        "resolved_reason": entity.get("resolved_reason", ""),
        "resolved_by": entity.get("resolved_by", ""),
        "resolved_at": iso(entity.get("resolved_at")),
        "version": int(entity.get("version", 0)),
        "changed_at": iso(entity.get("changed_at")),
        "change_reasons": [r for r in str(entity.get("change_reasons", "")).split("; ") if r],
    }
    if detail:
        doc["description"] = entity.get("description", "")
        doc["additional_details"] = json.loads(entity.get("additional_details") or "{}")
    return doc


def query_alerts(
    store: TableStore,
    *,
    status: str | None = None,
    customer: str | None = None,
    alert_type: str | None = None,
    since: datetime | None = None,
    limit: int | None = None,
) -> Iterator[dict[str, Any]]:
    """Alert rows matching every filter given (status and type compared case-insensitively)."""
    clauses = ["kind eq 'alert'"]
    params: dict[str, Any] = {}
    if status:
        clauses.append("status eq @status")
        params["status"] = status.lower()
    if customer:
        clauses.append("PartitionKey eq @customer")
        params["customer"] = customer.lower()
    if since:
        clauses.append("changed_at ge @since")
        params["since"] = since
    count = 0
    for page in store.query(ALERTS_TABLE, " and ".join(clauses), params):
        for entity in page.entities:
            if alert_type and str(entity.get("type", "")).lower() != alert_type.lower():
                continue
            yield entity
            count += 1
            if limit is not None and count >= limit:
                return


def find_alert(store: TableStore, alert_id: str) -> dict[str, Any] | None:
    """An alert by its id or source-qualified key (``partner_center:<id>``), in any partition."""
    from shared.sources import names

    keys = [alert_id] if ":" in alert_id else [f"{source}:{alert_id}" for source in names()]
    for key in keys:
        for page in store.query(ALERTS_TABLE, "RowKey eq @row", {"row": row_key(key)}):
            for entity in page.entities:
                if entity.get("kind") == "alert":
                    return entity
    return None
