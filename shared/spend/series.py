"""The per-subscription, per-day spend series: one table row per subscription-day.

Why this shape: the detectors need each subscription's recent days (a baseline of weeks), by
meter category and region, and nothing finer. A billing export of millions of line items folds
into a few tens of thousands of rows; a row is rewritten only when its content changed, so a second
run over unchanged data writes nothing.

Row: PartitionKey = subscription (Azure subscription id, the export's ``EntitlementId``),
RowKey = the usage date (``YYYY-MM-DD``), with the customer, the indirect reseller, the currency,
the total, and JSON maps of cost by meter category, by region and by meter sub-category (the
last names GPU series). Amounts are rounded to 1/10,000 of the currency unit.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Final

from shared.names import SPEND_TABLE
from shared.storage.tables import TableStore

DECIMALS: Final = 4
MAX_KEYS: Final = 60
"""Categories, regions or sub-categories kept per row (the largest); the rest sum into "other"."""


@dataclass
class SpendDay:
    """One subscription's spend on one day."""

    subscription_id: str
    day: date
    customer_id: str = ""
    customer_name: str = ""
    reseller_mpn_id: str = ""
    currency: str = ""
    total: float = 0.0
    by_category: dict[str, float] = field(default_factory=dict)
    by_region: dict[str, float] = field(default_factory=dict)
    by_subcategory: dict[str, float] = field(default_factory=dict)

    def add(self, cost: float, category: str, region: str, subcategory: str) -> None:
        self.total += cost
        self.by_category[category] = self.by_category.get(category, 0.0) + cost
        self.by_region[region] = self.by_region.get(region, 0.0) + cost
        self.by_subcategory[subcategory] = self.by_subcategory.get(subcategory, 0.0) + cost

    def to_entity(self) -> dict[str, Any]:
        body = {
            "customer_id": self.customer_id, "customer_name": self.customer_name,
            "reseller_mpn_id": self.reseller_mpn_id, "currency": self.currency,
            "total": round(self.total, DECIMALS),
            "by_category": _json_map(self.by_category), "by_region": _json_map(self.by_region),
            "by_subcategory": _json_map(self.by_subcategory),
        }
        fingerprint = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:32]
        return {"PartitionKey": self.subscription_id, "RowKey": self.day.isoformat(), **body,
                "fingerprint": fingerprint}

    @classmethod
    def from_entity(cls, entity: Mapping[str, Any]) -> SpendDay:
        return cls(
            subscription_id=str(entity["PartitionKey"]), day=date.fromisoformat(str(entity["RowKey"])),
            customer_id=str(entity.get("customer_id", "")), customer_name=str(entity.get("customer_name", "")),
            reseller_mpn_id=str(entity.get("reseller_mpn_id", "")), currency=str(entity.get("currency", "")),
            total=float(entity.get("total") or 0.0),
            by_category=_read_map(entity.get("by_category")), by_region=_read_map(entity.get("by_region")),
            by_subcategory=_read_map(entity.get("by_subcategory")),
        )


@dataclass
class FoldStats:
    lines: int = 0
    skipped: int = 0
    """Lines without a subscription, a usage date or a numeric cost."""


def fold(lines: Iterable[Mapping[str, Any]], stats: FoldStats | None = None) -> dict[tuple[str, date], SpendDay]:
    """Line items folded into subscription-days (memory: one entry per subscription-day)."""
    stats = stats if stats is not None else FoldStats()
    days: dict[tuple[str, date], SpendDay] = {}
    for line in lines:
        f = _Line(line)
        subscription = (f.text("EntitlementId") or f.text("SubscriptionId")).lower()
        usage = _day(f.text("UsageDate"))
        cost = _number(f.get("BillingPreTaxTotal"))
        if not subscription or usage is None or cost is None:
            stats.skipped += 1
            continue
        stats.lines += 1
        key = (subscription, usage)
        day = days.get(key)
        if day is None:
            day = days[key] = SpendDay(subscription, usage, customer_id=f.text("CustomerId").lower(),
                                       customer_name=f.text("CustomerName"), reseller_mpn_id=f.text("Tier2MpnId"),
                                       currency=f.text("BillingCurrency"))
        day.add(cost, f.text("MeterCategory") or "unknown", (f.text("ResourceLocation") or "unknown").lower(),
                f.text("MeterSubCategory") or "unknown")
    return days


@dataclass
class WriteResult:
    days: int = 0
    written: int = 0
    unchanged: int = 0
    transactions: int = 0


class SpendSeries:
    """The spend table: write folded days (only what changed), read a subscription's recent days."""

    def __init__(self, store: TableStore) -> None:
        self.store = store

    def write(self, days: Mapping[tuple[str, date], SpendDay]) -> WriteResult:
        """Upsert the days whose content changed since they were last written.

        :raises shared.storage.errors.StorageError: the table could not be read or written.
        """
        result = WriteResult(days=len(days))
        if not days:
            return result
        oldest = min(day for _, day in days).isoformat()
        known = {(e["PartitionKey"], e["RowKey"]): e.get("fingerprint")
                 for page in self.store.query(SPEND_TABLE, "RowKey ge @oldest", {"oldest": oldest},
                                              select=["PartitionKey", "RowKey", "fingerprint"])
                 for e in page.entities}
        changed = []
        for day in days.values():
            entity = day.to_entity()
            if known.get((entity["PartitionKey"], entity["RowKey"])) == entity["fingerprint"]:
                result.unchanged += 1
            else:
                changed.append(entity)
        if changed:
            batch = self.store.upsert_many(SPEND_TABLE, changed, mode="replace")
            result.transactions = batch.transactions
        result.written = len(changed)
        return result

    def days(self, subscription_id: str, *, since: date | None = None) -> list[SpendDay]:
        """A subscription's days, oldest first (from ``since`` when given)."""
        filter_ = "PartitionKey eq @pk" + (" and RowKey ge @since" if since else "")
        params: dict[str, Any] = {"pk": subscription_id.lower()}
        if since:
            params["since"] = since.isoformat()
        return [SpendDay.from_entity(e) for page in self.store.query(SPEND_TABLE, filter_, params)
                for e in page.entities]

    def recent(self, *, since: date) -> dict[str, list[SpendDay]]:
        """Every subscription's days from ``since`` (one scan of the table), oldest first."""
        series: dict[str, list[SpendDay]] = {}
        for page in self.store.query(SPEND_TABLE, "RowKey ge @since", {"since": since.isoformat()}):
            for entity in page.entities:
                series.setdefault(str(entity["PartitionKey"]), []).append(SpendDay.from_entity(entity))
        for days in series.values():
            days.sort(key=lambda d: d.day)
        return series

    def subscriptions(self) -> Iterator[str]:
        """Every subscription with a row (each once)."""
        seen: set[str] = set()
        for page in self.store.query(SPEND_TABLE, None, select=["PartitionKey"]):
            for entity in page.entities:
                if entity["PartitionKey"] not in seen:
                    seen.add(entity["PartitionKey"])
                    yield entity["PartitionKey"]


class _Line:
    """Case-insensitive access to a line item (Microsoft writes PascalCase; be tolerant)."""

    def __init__(self, line: Mapping[str, Any]) -> None:
        self._line = line
        self._lower: dict[str, Any] | None = None

    def get(self, name: str) -> Any:
        if name in self._line:
            return self._line[name]
        if self._lower is None:
            self._lower = {str(k).lower(): v for k, v in self._line.items()}
        return self._lower.get(name.lower())

    def text(self, name: str) -> str:
        value = self.get(name)
        return value.strip() if isinstance(value, str) else ("" if value is None else str(value))


def _day(text: str) -> date | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text[:10])
    except ValueError:
        try:
            return datetime.strptime(text.split(" ", maxsplit=1)[0], "%m/%d/%Y").date()
        except ValueError:
            return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(str(value))
    except (TypeError, ValueError):
        return None


def _json_map(values: Mapping[str, float]) -> str:
    ranked = sorted(values.items(), key=lambda kv: -kv[1])
    kept = {k: round(v, DECIMALS) for k, v in ranked[:MAX_KEYS]}
    rest = sum(v for _, v in ranked[MAX_KEYS:])
    if rest:
        kept["other"] = round(kept.get("other", 0.0) + rest, DECIMALS)
    return json.dumps(kept, sort_keys=True, separators=(",", ":"))


def _read_map(value: Any) -> dict[str, float]:
    try:
        data = json.loads(value) if isinstance(value, str) else {}
    except ValueError:
        return {}
    return {str(k): float(v) for k, v in data.items() if isinstance(v, int | float)} if isinstance(data, dict) else {}
