"""Quota hygiene ("reduce the unused quota"): core quotas far above anything used, per subscription.

Why: a compromised subscription mines with whatever core quota it already has, so GPU family
quota raised once and never used is the blast radius of the next compromise. Microsoft's checklist
asks partners to keep quota close to need. This is read only: a recommendation with the numbers
and where to lower the quota (the Azure portal's Usage + quotas, or a quota request); nothing is
changed.

The rule is a pure function over ``shared.detection.base.QuotaReading`` rows (one
``Microsoft.Compute/locations/{location}/usages`` row at one time), grouped by subscription, so
it runs on whatever reader supplies them (the detection reader of issue 13) and is tested on its
own. Several readings of one quota (different times) count their peak use.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from shared.detection.base import QuotaReading
from shared.formats import one_line

if TYPE_CHECKING:
    from shared.settings import Settings

QuotaReader = Callable[[Mapping[str, Iterable[str]]], tuple[dict[str, list[QuotaReading]], list[str]]]
"""{subscription: regions} -> (readings per subscription, one line per region that could not be read)."""

MIN_UNUSED_CORES: Final = 20
"""A quota is only worth a recommendation when at least this many cores of it sit unused."""
MAX_USED_FRACTION: Final = 0.25
"""... and the peak use is at most this fraction of the limit ("far above anything used")."""
GPU_FAMILY_MARKERS: Final = ("standardnc", "standardnd", "standardnv", "standardng")
"""N-series (GPU) families: the ones crypto-mining goes for, listed first."""
PORTAL_QUOTAS: Final = "https://portal.azure.com/#view/Microsoft_Azure_Capacity/QuotaMenuBlade/~/myQuotas"


def is_core_quota(name: str) -> bool:
    """Rows that count cores: the regional total, spot/low-priority cores and every VM family."""
    lowered = name.lower()
    return lowered in ("cores", "lowprioritycores") or lowered.endswith("family")


def is_gpu_family(name: str) -> bool:
    return name.lower().startswith(GPU_FAMILY_MARKERS)


@dataclass(frozen=True)
class QuotaRecommendation:
    """One quota to lower: where, how far above use it is, and to what."""

    subscription_id: str
    location: str
    name: str
    display_name: str
    limit: int
    peak_used: int
    suggested_limit: int
    gpu: bool
    readings: int

    @property
    def unused(self) -> int:
        return self.limit - self.peak_used

    def text(self) -> str:
        what = self.display_name or self.name
        kind = "GPU family " if self.gpu else ""
        return (f"subscription {self.subscription_id}, {self.location}: {kind}{what} quota is {self.limit} cores, "
                f"peak use {self.peak_used}; lower it to {self.suggested_limit} (Azure portal > Quotas > Compute, "
                "or a quota decrease request)")

    def as_json(self) -> dict[str, Any]:
        return {"subscription_id": self.subscription_id, "location": self.location, "name": self.name,
                "display_name": self.display_name, "limit": self.limit, "peak_used": self.peak_used,
                "unused": self.unused, "suggested_limit": self.suggested_limit, "gpu": self.gpu,
                "readings": self.readings, "recommendation": self.text()}


def suggested_limit(peak_used: int) -> int:
    """Room for twice the peak, rounded up to a multiple of 4 cores (0 stays 0: nothing was ever used)."""
    if peak_used <= 0:
        return 0
    return int(math.ceil(peak_used * 2 / 4) * 4)


def recommend(readings: Mapping[str, Iterable[QuotaReading]], *, min_unused: int = MIN_UNUSED_CORES,
              max_used_fraction: float = MAX_USED_FRACTION) -> list[QuotaRecommendation]:
    """The core quotas far above anything used, per subscription: GPU families first, then most unused.

    ``readings`` maps a subscription id to its usages rows (any regions, any times). A row with a
    negative or zero limit (no quota) or that does not count cores is ignored.
    """
    found: list[QuotaRecommendation] = []
    for subscription_id, rows in readings.items():
        peak: dict[tuple[str, str], tuple[int, int, str, int]] = {}
        for row in rows:
            if not is_core_quota(row.name) or row.limit <= 0:
                continue
            key = (row.location.lower(), row.name)
            limit, used, display, count = peak.get(key, (0, 0, "", 0))
            peak[key] = (max(limit, row.limit), max(used, row.current, 0), display or row.display_name,
                         count + 1)
        for (location, name), (limit, used, display, count) in peak.items():
            if limit - used < min_unused or used > limit * max_used_fraction:
                continue
            found.append(QuotaRecommendation(subscription_id=subscription_id, location=location, name=name,
                                             display_name=display, limit=limit, peak_used=used,
                                             suggested_limit=suggested_limit(used), gpu=is_gpu_family(name),
                                             readings=count))
    found.sort(key=lambda r: (not r.gpu, -r.unused, r.subscription_id, r.location, r.name))
    return found


def read_quota(settings: Settings, regions: Mapping[str, Iterable[str]]) -> tuple[dict[str, list[QuotaReading]],
                                                                                list[str]]:
    """Compute usages of the given regions per subscription, through the detection reader (issue 13).

    One region that cannot be read (no such customer subscription, ARM refused, throttled) is named
    in the errors and the others are still read.
    """
    from shared.factory import detection_reader

    readings: dict[str, list[QuotaReading]] = {}
    errors: list[str] = []
    with detection_reader(settings) as reader:
        for subscription_id, wanted in regions.items():
            for location in sorted({str(r).lower() for r in wanted if r}):
                try:
                    readings.setdefault(subscription_id, []).extend(reader.quota_readings(subscription_id, location))
                except Exception as exc:  # one region must not hide the others
                    errors.append(f"subscription {subscription_id}, {location}: {type(exc).__name__}: "
                                  f"{one_line(exc, 200)}")
    return readings, errors


def live_reader(settings: Settings) -> QuotaReader:
    """``read_quota`` bound to ``settings``, for callers that take a QuotaReader."""
    return lambda regions: read_quota(settings, regions)
