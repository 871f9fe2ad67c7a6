"""The watch list: the subscriptions detection watches, read from Partner Center and cached.

Why cached: listing every customer and its Azure plan entitlements costs 1 + 2 calls per
customer; the list changes a few times a day, the detection runs every few minutes. The cache is
a table of its own (``shared.names.WATCHLIST_TABLE``): partition ``target`` (one row per
subscription) and the ``meta/refresh`` row (when it was refreshed, and the last error). A refresh
runs when the cache is older than the refresh interval; a refresh that fails keeps the cache (and
records the error, shown by ``detect --status``), so a Partner Center outage does not stop
detection of the subscriptions already known.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from shared.detection.base import DetectionReader, Target
from shared.formats import parse_time
from shared.names import WATCHLIST_TABLE
from shared.storage.tables import TableStore

log = logging.getLogger(__name__)

TARGET_PARTITION: Final = "target"
META_PARTITION: Final = "meta"
REFRESH_ROW: Final = "refresh"


@dataclass(frozen=True)
class WatchListStatus:
    refreshed_at: datetime | None
    attempted_at: datetime | None
    error: str
    count: int


class WatchList:
    def __init__(self, store: TableStore, reader: Callable[[], DetectionReader], *, refresh: timedelta,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        """``reader`` is called only when a refresh is due (it may build clients and fetch tokens)."""
        self._store = store
        self._reader = reader
        self._refresh = refresh
        self._clock = clock

    def status(self) -> WatchListStatus:
        meta = self._store.get(WATCHLIST_TABLE, META_PARTITION, REFRESH_ROW) or {}
        return WatchListStatus(refreshed_at=parse_time(meta.get("refreshed_at")),
                               attempted_at=parse_time(meta.get("attempted_at")),
                               error=str(meta.get("error", "")), count=int(meta.get("count", 0)))

    def targets(self, *, force: bool = False) -> list[Target]:
        """The watched subscriptions: refreshed when due (or ``force``), else the cache.

        :raises Exception: the refresh failed and there is no cache to fall back on.
        """
        now = self._clock()
        status = self.status()
        due = force or status.refreshed_at is None or now - status.refreshed_at >= self._refresh
        if due:
            try:
                return self._refreshed(now)
            except Exception as exc:
                error = f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0][:500]}"
                self._store.upsert(WATCHLIST_TABLE, {"PartitionKey": META_PARTITION, "RowKey": REFRESH_ROW,
                                                     "attempted_at": now, "error": error}, mode="merge")
                if status.refreshed_at is None:
                    raise
                log.error("watch list refresh failed; detection goes on with the %d cached subscriptions: %s",
                          status.count, error)
        return self.cached()

    def cached(self) -> list[Target]:
        return [Target(customer_tenant_id=str(e.get("customer_tenant_id", "")), subscription_id=str(e["RowKey"]),
                       customer_name=str(e.get("customer_name", "")), reseller_id=str(e.get("reseller_id", "")))
                for e in self._store.list_partition(WATCHLIST_TABLE, TARGET_PARTITION)]

    def _refreshed(self, now: datetime) -> list[Target]:
        targets = {t.subscription_id.lower(): t for t in self._reader().targets()}
        rows = [{"PartitionKey": TARGET_PARTITION, "RowKey": sub, "customer_tenant_id": t.customer_tenant_id.lower(),
                 "customer_name": t.customer_name, "reseller_id": t.reseller_id, "seen_at": now}
                for sub, t in targets.items()]
        if rows:
            self._store.upsert_many(WATCHLIST_TABLE, rows, mode="replace")
        for entity in self._store.list_partition(WATCHLIST_TABLE, TARGET_PARTITION, select=["RowKey"]):
            if entity["RowKey"] not in targets:  # no longer an active Azure plan entitlement
                self._store.delete(WATCHLIST_TABLE, TARGET_PARTITION, str(entity["RowKey"]))
        self._store.upsert(WATCHLIST_TABLE, {"PartitionKey": META_PARTITION, "RowKey": REFRESH_ROW,
                                             "refreshed_at": now, "attempted_at": now, "error": "",
                                             "count": len(targets)}, mode="replace")
        return [Target(t.customer_tenant_id.lower(), sub, t.customer_name, t.reseller_id)
                for sub, t in targets.items()]
