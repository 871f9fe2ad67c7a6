"""One alert model for every source (Partner Center fraud events, Graph partner security alerts,
and the detectors registered in ``shared.sources``, which parse their records into it).

Parsing is tolerant where Microsoft's contract is loose (key case, ``hitCount`` as a string,
``activityLogs`` as a JSON string or an array, missing optional fields, unknown event types kept
as they are) and strict where a record would be useless (no id or no customer tenant:
``AlertParseError``, so the caller counts it and goes on with the rest of the page).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from fractions import Fraction
from typing import Any

from shared.errors import FraudResponderError
from shared.formats import parse_time as _parse_time

Source = str
"""A registered source's name (``shared.sources``): an open set, so a new source needs no edit here."""

STATUSES = ("active", "investigating", "resolved")
SEVERITIES = ("informational", "low", "medium", "high")

# Partner Center writes this far-future date into resolvedOn while an event is unresolved.
_UNRESOLVED_SENTINEL_YEAR = 9999

# Table Storage caps a string property at 64 KiB (32K UTF-16 characters); the raw payload is
# stored in chunks below that so nothing Microsoft sent is lost.
RAW_CHUNK_CHARS = 30_000
RAW_MAX_CHUNKS = 15


class AlertParseError(FraudResponderError, ValueError):
    """A source record that cannot become an alert (no id, no customer)."""


@dataclass(frozen=True)
class AffectedResource:
    resource_id: str
    resource_type: str = ""


@dataclass(frozen=True)
class ActivityLogEntry:
    status_from: str
    status_to: str
    updated_by: str
    updated_at: datetime | None


@dataclass(frozen=True)
class Alert:
    """A fraud or security alert, whatever its source; times are timezone-aware UTC."""

    id: str
    source: Source
    customer_tenant_id: str
    subscription_id: str
    type: str
    status: str
    severity: str
    confidence: str
    detected_at: datetime | None
    first_observed_at: datetime | None
    last_observed_at: datetime | None
    hit_count: int | None
    affected_resources: tuple[AffectedResource, ...]
    additional_details: dict[str, Any]
    is_test: bool
    raw: dict[str, Any] = field(compare=False)
    customer_name: str = ""
    subscription_name: str = ""
    display_name: str = ""
    description: str = ""
    partner_tenant_id: str = ""
    resolved_reason: str = ""
    resolved_by: str = ""
    resolved_at: datetime | None = None
    activity_logs: tuple[ActivityLogEntry, ...] = ()
    catalog_offer_id: str = ""

    @property
    def key(self) -> str:
        """Identity across sources: the same event id may not be unique across both."""
        return f"{self.source}:{self.id}"

    @property
    def category(self) -> str:
        """As the alert's source categorises its type (``shared.sources``); 'other' when unknown."""
        from shared.sources import categorise

        return categorise(self.source, self.type)

    def fingerprint(self) -> str:
        """Hash of the normalised content (not the raw payload): equal means nothing changed."""
        return hashlib.sha256(json.dumps(_content(self), sort_keys=True, default=str).encode()).hexdigest()


def _content(alert: Alert) -> dict[str, Any]:
    return {
        "status": alert.status, "severity": alert.severity, "confidence": alert.confidence,
        "type": alert.type, "hit_count": alert.hit_count,
        "resources": sorted(r.resource_id.lower() for r in alert.affected_resources),
        "last_observed_at": alert.last_observed_at, "resolved_reason": alert.resolved_reason,
        "additional_details": alert.additional_details, "is_test": alert.is_test,
        "display_name": alert.display_name, "description": alert.description,
    }


# --- tolerant field access ----------------------------------------------------------------------


class _Fields:
    """Case-insensitive view of a source record."""

    def __init__(self, record: Mapping[str, Any]) -> None:
        self._by_lower = {str(k).lower(): v for k, v in record.items()}

    def get(self, *names: str) -> Any:
        for name in names:
            value = self._by_lower.get(name.lower())
            if value is not None:
                return value
        return None

    def text(self, *names: str) -> str:
        value = self.get(*names)
        return "" if value is None else str(value).strip()


def parse_time(value: Any) -> datetime | None:
    """``shared.formats.parse_time``, with Partner Center's "never" sentinel (year 9999) read as None."""
    parsed = _parse_time(value)
    return None if parsed is None or parsed.year >= _UNRESOLVED_SENTINEL_YEAR else parsed


def _int(value: Any) -> int | None:
    """A count however it is sent (number, text, "12.0", an Int64 read back); None when it is not one."""
    if isinstance(value, tuple) and len(value) == 2:  # EntityProperty(value, Edm.Int64) from the SDK
        value = value[0]
    if value is None or value == "" or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    try:
        return int(str(value).strip())
    except ValueError:  # also text beyond Python's 4,300-digit limit
        try:
            return int(float(str(value).strip()))
        except (ValueError, OverflowError):
            return None


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("true", "1", "yes")


def _lower_enum(value: str, known: tuple[str, ...]) -> str:
    v = value.strip().lower()
    if v == "resolve":  # the update-status doc says "Resolve" in one place, "Resolved" elsewhere
        v = "resolved"
    return v if v in known else (v or "unknown")


def _json_maybe(value: Any) -> Any:
    """A value that may be JSON in a string (activityLogs, additionalDetails, miningPool_IP)."""
    if isinstance(value, str):
        text = value.strip()
        if text[:1] in ("[", "{"):
            try:
                return json.loads(text)
            except json.JSONDecodeError:
                return value
    return value


def _activity_logs(value: Any) -> tuple[ActivityLogEntry, ...]:
    items = _json_maybe(value)
    if not isinstance(items, list):
        return ()
    entries = []
    for item in items:
        if isinstance(item, Mapping):
            f = _Fields(item)
            entries.append(ActivityLogEntry(
                status_from=f.text("statusFrom"), status_to=f.text("statusTo"), updated_by=f.text("updatedBy"),
                updated_at=parse_time(f.get("dateTime", "updatedDateTime")),
            ))
    return tuple(entries)


def _resources(value: Any) -> tuple[AffectedResource, ...]:
    items = _json_maybe(value)
    if not isinstance(items, list):
        return ()
    resources = []
    for item in items:
        if isinstance(item, Mapping):
            f = _Fields(item)
            rid = f.text("azureResourceId", "resourceId", "id")
            if rid:
                resources.append(AffectedResource(rid, f.text("type", "resourceType")))
        elif isinstance(item, str) and item.strip():
            resources.append(AffectedResource(item.strip()))
    return tuple(resources)


def _details(value: Any) -> dict[str, Any]:
    parsed = _json_maybe(value)
    if isinstance(parsed, Mapping):
        return {str(k): _json_maybe(v) for k, v in parsed.items()}
    return {} if parsed in (None, "") else {"value": parsed}


def _require(fields: _Fields, what: str, *names: str) -> str:
    value = fields.text(*names)
    if not value:
        raise AlertParseError(f"record has no {what} ({' / '.join(names)})")
    return value


# --- sources ------------------------------------------------------------------------------------


def parse_alert(source: Source, record: Mapping[str, Any]) -> Alert:
    """A raw record of ``source`` as an Alert, parsed by that source's module (``shared.sources``).

    :raises AlertParseError: the record cannot become an alert, or no source has that name.
    """
    from shared.sources import UnknownSource, load

    try:
        module = load(source)
    except UnknownSource as exc:
        raise AlertParseError(str(exc)) from None
    return module.parse(record)


# --- material change ----------------------------------------------------------------------------

HIT_COUNT_GROWTH = 2.0
"""A hit count that at least doubles (or first appears) is a material change. The sync compares
with the hit count of the version last answered (``answered_hit_count`` on the row), so a count
that creeps up poll by poll still gets a fresh response each time it has doubled."""


def material_changes(old: Alert | None, new: Alert) -> list[str]:
    """Why ``new`` deserves a fresh response; empty when it is a cosmetic update (or none)."""
    if old is None:
        return ["new alert"]
    reasons = []
    if old.status != new.status:
        reasons.append(f"status {old.status} -> {new.status}")
    if old.severity != new.severity:
        reasons.append(f"severity {old.severity} -> {new.severity}")
    if new.hit_count is not None and (
        old.hit_count is None or (old.hit_count > 0 and new.hit_count >= old.hit_count * Fraction(HIT_COUNT_GROWTH))
    ):
        reasons.append(f"hit count {old.hit_count} -> {new.hit_count}")
    added = {r.resource_id.lower() for r in new.affected_resources} - {
        r.resource_id.lower() for r in old.affected_resources
    }
    if added:
        reasons.append(f"{len(added)} new affected resource(s)")
    return reasons


# --- Table Storage mapping ----------------------------------------------------------------------


MAX_KEY_CHARS = 255
"""Longer ids are cut and suffixed with a hash: Table keys hold at most 1 KiB."""


def _bounded(key: str) -> str:
    if len(key) <= MAX_KEY_CHARS:
        return key
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return f"{key[: MAX_KEY_CHARS - 34]}~h{digest}"


def row_key(alert_key: str) -> str:
    """RowKey for an alert: the source-qualified id with characters Table keys forbid replaced
    (and a hash in place of the tail of an id too long for a key)."""
    return _bounded(re.sub(r"[/\\#?\x00-\x1f\x7f-\x9f]", lambda m: f"~{ord(m.group()):02x}", alert_key))


def partition_key(customer_tenant_id: str) -> str:
    """PartitionKey for a customer's alerts: the tenant id (a GUID) as it is; anything else a
    source sends is encoded so that it can still be stored."""
    from shared.storage.tables import safe_key

    return _bounded(safe_key(customer_tenant_id))


def _json_within(items: list[Any], limit: int = RAW_CHUNK_CHARS) -> str:
    """A JSON array column that stays parseable: as many leading items as fit in ``limit``."""
    text = json.dumps(items, default=str)
    while len(text) > limit and items:
        items = items[: max(0, min(len(items) - 1, len(items) * limit // len(text)))]
        text = json.dumps(items, default=str)
    return text


def _json_object_within(value: dict[str, Any], limit: int = RAW_CHUNK_CHARS) -> str:
    """A JSON object column that stays parseable: whole, or its text cut and marked as such."""
    whole = text = json.dumps(value, sort_keys=True, default=str)
    cut = limit - 100
    while len(text) > limit:  # escaping can make the wrapped text longer than the cut: cut again
        text = json.dumps({"truncated": True, "text": whole[: max(cut, 0)]})
        cut = cut * limit // len(text) - 100
    return text


def to_entity(alert: Alert, *, version: int, changed_at: datetime, reasons: list[str] | None = None) -> dict[str, Any]:
    """The alerts-table row: partitioned by customer tenant (spreads load across customers)."""
    from shared.storage.tables import ENTITY_BUDGET, entity_size

    entity: dict[str, Any] = {
        "PartitionKey": partition_key(alert.customer_tenant_id),
        "RowKey": row_key(alert.key),
        "alert_id": alert.id,
        "source": alert.source,
        "customer_tenant_id": alert.customer_tenant_id,
        "customer_name": alert.customer_name,
        "subscription_id": alert.subscription_id,
        "subscription_name": alert.subscription_name,
        "partner_tenant_id": alert.partner_tenant_id,
        "type": alert.type,
        "category": alert.category,
        "status": alert.status,
        "severity": alert.severity,
        "confidence": alert.confidence,
        "display_name": alert.display_name,
        "description": alert.description[:8000],
        "detected_at": alert.detected_at,
        "first_observed_at": alert.first_observed_at,
        "last_observed_at": alert.last_observed_at,
        "hit_count": alert.hit_count,
        "affected_resources": _json_within([[r.resource_id, r.resource_type] for r in alert.affected_resources]),
        "additional_details": _json_object_within(alert.additional_details),
        "is_test": alert.is_test,
        "resolved_reason": alert.resolved_reason,
        "resolved_by": alert.resolved_by,
        "resolved_at": alert.resolved_at,
        "catalog_offer_id": alert.catalog_offer_id,
        "activity_logs": _json_within(
            [[e.status_from, e.status_to, e.updated_by, e.updated_at.isoformat() if e.updated_at else None]
             for e in alert.activity_logs]
        ),
        "fingerprint": alert.fingerprint(),
        "version": version,
        "changed_at": changed_at,
        "change_reasons": "; ".join(reasons or []),
    }
    # The raw payload takes what the entity's 1 MiB leaves (kept whole when it fits; a cut one is
    # ignored by from_entity, which then reads the columns). json.dumps writes ASCII: 2 bytes a char.
    raw = json.dumps(alert.raw, sort_keys=True, default=str)
    room = (ENTITY_BUDGET - entity_size(entity) - 8 * 1024) // 2 - RAW_MAX_CHUNKS * 40
    raw_cut = raw[: max(0, min(room, RAW_CHUNK_CHARS * RAW_MAX_CHUNKS))]
    chunks = [raw_cut[i : i + RAW_CHUNK_CHARS] for i in range(0, len(raw_cut), RAW_CHUNK_CHARS)]
    entity["raw_chunks"] = len(chunks)
    for i, chunk in enumerate(chunks):
        entity[f"raw_{i}"] = chunk
    return {k: v for k, v in entity.items() if v is not None}


def from_entity(entity: Mapping[str, Any]) -> Alert:
    """Rebuild an Alert from its row: re-parsed from the stored raw payload when it is whole
    (the row's columns are for queries and may be shortened), else from the columns."""
    raw_text = "".join(str(entity.get(f"raw_{i}", "")) for i in range(int(entity.get("raw_chunks", 0))))
    source: Source = str(entity.get("source") or "partner_center")  # rows from before the column: Partner Center
    try:
        raw = json.loads(raw_text) if raw_text else {}
        return parse_alert(source, raw)
    except (json.JSONDecodeError, AlertParseError):
        raw = {"truncated": True}

    def when(name: str) -> datetime | None:
        return parse_time(entity.get(name))

    return Alert(
        id=str(entity["alert_id"]),
        source=source,
        customer_tenant_id=str(entity.get("customer_tenant_id", entity.get("PartitionKey", ""))),
        subscription_id=str(entity.get("subscription_id", "")),
        type=str(entity.get("type", "")),
        status=str(entity.get("status", "")),
        severity=str(entity.get("severity", "")),
        confidence=str(entity.get("confidence", "")),
        detected_at=when("detected_at"),
        first_observed_at=when("first_observed_at"),
        last_observed_at=when("last_observed_at"),
        hit_count=_int(entity.get("hit_count")),
        affected_resources=tuple(AffectedResource(r[0], r[1]) for r in json.loads(entity.get("affected_resources")
                                                                                 or "[]")),
        additional_details=json.loads(entity.get("additional_details") or "{}"),
        is_test=bool(entity.get("is_test", False)),
        raw=raw,
        customer_name=str(entity.get("customer_name", "")),
        subscription_name=str(entity.get("subscription_name", "")),
        display_name=str(entity.get("display_name", "")),
        description=str(entity.get("description", "")),
        partner_tenant_id=str(entity.get("partner_tenant_id", "")),
        resolved_reason=str(entity.get("resolved_reason", "")),
        resolved_by=str(entity.get("resolved_by", "")),
        resolved_at=when("resolved_at"),
        activity_logs=tuple(
            ActivityLogEntry(a[0], a[1], a[2], parse_time(a[3])) for a in json.loads(entity.get("activity_logs")
                                                                                     or "[]")
        ),
        catalog_offer_id=str(entity.get("catalog_offer_id", "")),
    )


def with_status(alert: Alert, status: str, reason: str = "") -> Alert:
    return replace(alert, status=status, resolved_reason=reason)
