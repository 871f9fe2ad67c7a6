"""One spend refresh: export last and current month's unbilled usage, fold it, write what changed.

A refresh is idempotent: the same export folds into the same subscription-days, and unchanged
rows are not written, so a run that dies part-way is simply run again. The two billing periods
cover the 30 to 60 days the baselines need.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from shared.spend.export import BillingExportClient, BillingPeriod, ExportStats
from shared.spend.series import FoldStats, SpendSeries, WriteResult, fold

log = logging.getLogger(__name__)

PERIODS: tuple[BillingPeriod, ...] = ("last", "current")


@dataclass
class RefreshResult:
    export: ExportStats = field(default_factory=ExportStats)
    fold: FoldStats = field(default_factory=FoldStats)
    write: WriteResult = field(default_factory=WriteResult)
    wait_s: float = 0.0
    """Waiting for Microsoft to prepare the exports."""
    read_s: float = 0.0
    """Downloading, decompressing, parsing and folding the files."""
    write_s: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"export": asdict(self.export), "fold": asdict(self.fold), "write": asdict(self.write)}


def refresh_spend(client: BillingExportClient, series: SpendSeries, *, currency_code: str,
                  periods: tuple[BillingPeriod, ...] = PERIODS, timeout: float = 1800.0) -> RefreshResult:
    """Export, fold and store; returns the counts.

    :raises shared.spend.export.BillingExportError: an export failed or did not finish in time.
    :raises shared.http.MicrosoftApiError: Graph refused (403: grant ``PartnerBilling.Read.All``).
    :raises shared.storage.errors.StorageError: the spend table could not be written.
    """
    result = RefreshResult()
    days = {}
    for period in periods:
        started = time.perf_counter()
        operation = client.start(billing_period=period, currency_code=currency_code)
        manifest = client.wait(operation, timeout=timeout)
        read_from = time.perf_counter()
        result.wait_s += read_from - started
        days.update(fold(client.line_items(manifest), result.fold))
        result.read_s += time.perf_counter() - read_from
    result.export = client.stats
    started = time.perf_counter()
    result.write = series.write(days)
    result.write_s = time.perf_counter() - started
    log.info("spend refresh: %d lines, %d subscription-days, %d written", result.fold.lines, len(days),
             result.write.written)
    return result
