"""The spend step of a detection run: refresh the daily series when due, judge it, report findings.

Why part of detection: the spend detectors' alerts go where the other detectors' go (the same
runner stores them through the sync, one alert per detector, subject and episode). Why "when
due": the billing export is refreshed by Microsoft about once a day and takes minutes to prepare,
so a run refreshes the series at most every ``SPEND_REFRESH_HOURS`` (the time of the last good
refresh is a checkpoint row); the runner judges the series after a refresh only (it has not
changed in between).
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from shared.detection.base import Outcome
from shared.names import CHECKPOINTS_TABLE
from shared.spend.findings import DETECTOR_OF, rules_config, spend_findings
from shared.spend.series import SpendSeries

if TYPE_CHECKING:
    from shared.settings import Settings
    from shared.spend.refresh import RefreshResult
    from shared.storage.tables import TableStore

log = logging.getLogger(__name__)

SPEND_DETECTORS: Final = tuple(DETECTOR_OF.values())
CHECKPOINT_PARTITION: Final = "spend"
CHECKPOINT_ROW: Final = "refresh"
HISTORY_DAYS: Final = 60


def last_refresh(store: TableStore) -> datetime | None:
    row = store.get(CHECKPOINTS_TABLE, CHECKPOINT_PARTITION, CHECKPOINT_ROW)
    at = row.get("at") if row else None
    return at if isinstance(at, datetime) else None


def refresh_if_due(settings: Settings, store: TableStore, *, now: datetime | None = None,
                   force: bool = False) -> RefreshResult | None:
    """Export and fold the usage when the last good refresh is older than SPEND_REFRESH_HOURS.

    :raises shared.spend.export.BillingExportError: the export failed (the next run tries again).
    :raises shared.http.MicrosoftApiError: Graph refused (403: grant ``PartnerBilling.Read.All``).
    """
    moment = now or datetime.now(UTC)
    previous = last_refresh(store)
    if not force and previous is not None and moment - previous < timedelta(hours=settings.spend_refresh_hours):
        return None
    from shared import factory
    from shared.spend.refresh import refresh_spend

    client = factory.billing_export(settings, factory.app_tokens(settings))
    try:
        result = refresh_spend(client, SpendSeries(store), currency_code=settings.spend_currency)
    finally:
        client.close()
    store.upsert(CHECKPOINTS_TABLE, {"PartitionKey": CHECKPOINT_PARTITION, "RowKey": CHECKPOINT_ROW, "at": moment,
                                     "result": json.dumps(result.as_dict(), default=str)[:30000]}, mode="replace")
    return result


def spend_outcomes(store: TableStore, *, today: datetime | None = None, config: Any = None
                   ) -> tuple[dict[str, Outcome], dict[str, str], int]:
    """Each spend detector's findings over the stored series, the customers' names, and the
    subscriptions judged; ``config`` is the ``[detection]`` configuration (defaults when None)."""
    from shared.detection.config import DEFAULT

    since = (today or datetime.now(UTC)).date() - timedelta(days=HISTORY_DAYS)
    series = SpendSeries(store).recent(since=since)
    grouped: dict[str, list[Any]] = defaultdict(list)
    for finding in spend_findings(series, rules_config((config or DEFAULT).spend)):
        grouped[finding.detector].append(finding)
    names = {days[0].customer_id: days[0].customer_name for days in series.values() if days}
    return ({name: Outcome(findings=tuple(grouped.get(name, ())), state={}) for name in SPEND_DETECTORS},
            names, len(series))

