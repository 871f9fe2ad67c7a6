"""The spend rules: pure judgements over the per-subscription daily series (``shared.spend.series``).

Four rules, each returning the evidence an operator needs to agree or disagree (the series, the
baseline, the threshold and the rule), never a bare score:

* **spend spike** — the latest day against the subscription's own weekday-aware robust baseline:
  the median and MAD of the same kind of day (weekday or weekend) over recent weeks; it fires when
  the day is above ``median + k * 1.4826 * MAD``, at least ``min_ratio`` times the median, and at
  least ``floor`` above it (so small numbers stay quiet);
* **new subscription** — a subscription too young for a baseline is judged against absolute caps
  (daily and since it started);
* **new meters** — GPU, machine learning, Batch or container meters first seen in the last days,
  or a region never used before by a subscription with history;
* **micro-fraud** — per indirect reseller (or customer when there is none): many new subscriptions
  in a window, each small, whose spend adds up past a threshold.

Usage data arrives about a day late, so "latest" is the newest day in the series, not today.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Final

from shared.spend.series import SpendDay

MAD_SCALE: Final = 1.4826
"""MAD times this estimates the standard deviation of normal data."""


@dataclass(frozen=True)
class SpikeConfig:
    baseline_days: int = 28
    """Days before the judged one that form the baseline."""
    min_history_days: int = 14
    """Fewer days than this: the subscription is judged as new (caps), not against a baseline."""
    k: float = 6.0
    min_ratio: float = 2.5
    floor: float = 100.0
    """The day must exceed the median by at least this amount (billing currency)."""


@dataclass(frozen=True)
class NewSubscriptionConfig:
    young_days: int = 14
    daily_cap: float = 500.0
    total_cap: float = 1500.0


@dataclass(frozen=True)
class NewMeterConfig:
    recent_days: int = 2
    """A meter first seen within this many days of the latest is "new"."""
    watched_categories: tuple[str, ...] = ("machine learning", "azure batch", "batch", "container instances")
    gpu_series: tuple[str, ...] = ("nc", "nd", "nv", "ng")
    """Virtual Machines sub-categories starting with these (``NCads A100 v4 Series``) are GPU meters."""
    new_region_min_history_days: int = 14


@dataclass(frozen=True)
class MicroFraudConfig:
    window_days: int = 7
    min_new_subscriptions: int = 5
    small_daily: float = 150.0
    """A new subscription counts as small when its largest day stays under this."""
    min_total: float = 500.0
    """The group's new subscriptions must add up to at least this over the window."""


@dataclass(frozen=True)
class SpendRulesConfig:
    spike: SpikeConfig = field(default_factory=SpikeConfig)
    new_subscription: NewSubscriptionConfig = field(default_factory=NewSubscriptionConfig)
    new_meter: NewMeterConfig = field(default_factory=NewMeterConfig)
    micro_fraud: MicroFraudConfig = field(default_factory=MicroFraudConfig)


@dataclass(frozen=True)
class SpendFinding:
    """One rule that fired for a subscription (or a reseller's group), with its evidence."""

    rule: str
    subject: str
    """The subscription, or ``reseller:<mpn id>`` / ``customer:<tenant>`` for micro-fraud."""
    customer_id: str
    day: date
    severity: str
    confidence: str
    title: str
    description: str
    evidence: Mapping[str, Any]
    subscriptions: tuple[str, ...] = ()


def series_points(days: Sequence[SpendDay], last: int = 30) -> list[dict[str, Any]]:
    """The last ``last`` days as ``{"day", "total"}`` (the chart and the alert's evidence)."""
    return [{"day": d.day.isoformat(), "total": round(d.total, 2)} for d in days[-last:]]


def spike(days: Sequence[SpendDay], cfg: SpikeConfig = SpikeConfig()) -> SpendFinding | None:
    """The latest day against the same kind of day in the baseline."""
    if len(days) < cfg.min_history_days + 1:
        return None
    latest = days[-1]
    start = latest.day - timedelta(days=cfg.baseline_days)
    weekend = latest.day.weekday() >= 5
    baseline = [d.total for d in days[:-1] if d.day >= start and (d.day.weekday() >= 5) == weekend]
    if len(baseline) < 3:
        return None
    median = statistics.median(baseline)
    mad = statistics.median(abs(v - median) for v in baseline)
    threshold = max(median + cfg.k * MAD_SCALE * mad, median * cfg.min_ratio, median + cfg.floor)
    if latest.total <= threshold:
        return None
    ratio = latest.total / median if median else float("inf")
    return SpendFinding(
        rule="spend_spike", subject=latest.subscription_id, customer_id=latest.customer_id, day=latest.day,
        severity="high" if ratio >= 2 * cfg.min_ratio else "medium",
        confidence="high" if len(baseline) >= 8 else "medium",
        title=f"Spend spike: {latest.total:,.2f} {latest.currency} on {latest.day.isoformat()}",
        description=(f"{latest.total:,.2f} {latest.currency} is {ratio:.1f}x the usual "
                     f"{'weekend' if weekend else 'weekday'} spend of {median:,.2f} (median of {len(baseline)} days; "
                     f"threshold {threshold:,.2f})."),
        evidence={"rule": "spend_spike", "series": series_points(days), "day": latest.day.isoformat(),
                  "total": round(latest.total, 2), "currency": latest.currency,
                  "baseline": {"median": round(median, 2), "mad": round(mad, 2), "days": len(baseline),
                               "kind": "weekend" if weekend else "weekday"},
                  "threshold": round(threshold, 2), "ratio": round(ratio, 2),
                  "by_category": _top(latest.by_category), "config": cfg.__dict__},
        subscriptions=(latest.subscription_id,),
    )


def new_subscription(days: Sequence[SpendDay], cfg: NewSubscriptionConfig = NewSubscriptionConfig()
                     ) -> SpendFinding | None:
    """A subscription younger than ``young_days`` over an absolute cap."""
    if not days:
        return None
    first, latest = days[0], days[-1]
    age = (latest.day - first.day).days + 1
    if age > cfg.young_days:
        return None
    total = sum(d.total for d in days)
    peak = max(d.total for d in days)
    broken = [name for name, hit in (("daily", peak > cfg.daily_cap), ("total", total > cfg.total_cap)) if hit]
    if not broken:
        return None
    return SpendFinding(
        rule="new_subscription_over_cap", subject=latest.subscription_id, customer_id=latest.customer_id,
        day=latest.day, severity="high", confidence="medium" if broken == ["total"] else "high",
        title=f"New subscription over its cap: {total:,.2f} {latest.currency} in {age} days",
        description=(f"The subscription is {age} days old (too young for a baseline) and spent {total:,.2f} "
                     f"{latest.currency} (largest day {peak:,.2f}); caps are {cfg.daily_cap:,.2f} a day and "
                     f"{cfg.total_cap:,.2f} in total."),
        evidence={"rule": "new_subscription_over_cap", "series": series_points(days), "age_days": age,
                  "total": round(total, 2), "peak_day": round(peak, 2), "currency": latest.currency,
                  "caps": {"daily": cfg.daily_cap, "total": cfg.total_cap}, "broken": broken,
                  "by_category": _top(latest.by_category)},
        subscriptions=(latest.subscription_id,),
    )


def new_meters(days: Sequence[SpendDay], cfg: NewMeterConfig = NewMeterConfig()) -> SpendFinding | None:
    """Watched meters (GPU, ML, Batch, containers) or a region first seen in the last days."""
    if not days:
        return None
    latest = days[-1]
    recent_from = latest.day - timedelta(days=cfg.recent_days - 1)
    before = [d for d in days if d.day < recent_from]
    recent = [d for d in days if d.day >= recent_from]
    seen_sub = {k for d in before for k in d.by_subcategory}
    seen_cat = {k for d in before for k in d.by_category}
    seen_region = {k for d in before for k in d.by_region}
    meters: dict[str, float] = defaultdict(float)
    regions: dict[str, float] = defaultdict(float)
    for d in recent:
        for name, cost in d.by_subcategory.items():
            if name not in seen_sub and _is_gpu(name, cfg):
                meters[name] += cost
        for name, cost in d.by_category.items():
            if name not in seen_cat and name.lower() in cfg.watched_categories:
                meters[name] += cost
        if len({d.day for d in before}) >= cfg.new_region_min_history_days:
            for name, cost in d.by_region.items():
                if name not in seen_region:
                    regions[name] += cost
    if not meters and not regions:
        return None
    what = [*(f"meter {m}" for m in meters), *(f"region {r}" for r in regions)]
    return SpendFinding(
        rule="new_meters", subject=latest.subscription_id, customer_id=latest.customer_id, day=latest.day,
        severity="high" if meters else "medium", confidence="high" if meters and regions else "medium",
        title="First-seen " + ", ".join(what[:3]) + ("…" if len(what) > 3 else ""),
        description=(f"In the last {cfg.recent_days} days the subscription started paying for "
                     f"{', '.join(what)}, never seen in its {len({d.day for d in before})} earlier days."),
        evidence={"rule": "new_meters", "series": series_points(days), "new_meters": _rounded(meters),
                  "new_regions": _rounded(regions), "history_days": len({d.day for d in before}),
                  "currency": latest.currency},
        subscriptions=(latest.subscription_id,),
    )


def micro_fraud(series: Mapping[str, Sequence[SpendDay]], cfg: MicroFraudConfig = MicroFraudConfig()
                ) -> list[SpendFinding]:
    """Per reseller (or customer): many small new subscriptions whose spend adds up."""
    if not series:
        return []
    latest = max(days[-1].day for days in series.values() if days)
    window_start = latest - timedelta(days=cfg.window_days - 1)
    groups: dict[str, list[Sequence[SpendDay]]] = defaultdict(list)
    for days in series.values():
        if not days or days[0].day < window_start:
            continue  # not new in the window
        if max(d.total for d in days) >= cfg.small_daily:
            continue  # not small: the other rules judge it
        owner = f"reseller:{days[0].reseller_mpn_id}" if days[0].reseller_mpn_id else f"customer:{days[0].customer_id}"
        groups[owner].append(days)
    findings = []
    for owner, members in sorted(groups.items()):
        total = sum(d.total for days in members for d in days)
        if len(members) < cfg.min_new_subscriptions or total < cfg.min_total:
            continue
        customers = sorted({days[0].customer_id for days in members})
        subscriptions = tuple(sorted(days[0].subscription_id for days in members))
        findings.append(SpendFinding(
            rule="micro_fraud", subject=owner, customer_id=customers[0] if len(customers) == 1 else "", day=latest,
            severity="high", confidence="medium" if len(members) < 2 * cfg.min_new_subscriptions else "high",
            title=f"Micro-fraud pattern: {len(members)} small new subscriptions under {owner}",
            description=(f"{len(members)} subscriptions of {len(customers)} customers started within "
                         f"{cfg.window_days} days, each under {cfg.small_daily:,.2f} a day, together "
                         f"{total:,.2f} (threshold {cfg.min_total:,.2f})."),
            evidence={"rule": "micro_fraud", "owner": owner, "customers": customers,
                      "subscriptions": list(subscriptions), "total": round(total, 2),
                      "window_days": cfg.window_days, "thresholds": {"min_new_subscriptions": cfg.min_new_subscriptions,
                                                                     "small_daily": cfg.small_daily,
                                                                     "min_total": cfg.min_total},
                      "per_subscription": {days[0].subscription_id: round(sum(d.total for d in days), 2)
                                           for days in members}},
            subscriptions=subscriptions,
        ))
    return findings


def judge(series: Mapping[str, Sequence[SpendDay]], cfg: SpendRulesConfig = SpendRulesConfig()) -> list[SpendFinding]:
    """Every rule over every subscription's series (oldest day first)."""
    found: list[SpendFinding] = []
    for days in series.values():
        for finding in (spike(days, cfg.spike), new_subscription(days, cfg.new_subscription),
                        new_meters(days, cfg.new_meter)):
            if finding is not None:
                found.append(finding)
    found.extend(micro_fraud(series, cfg.micro_fraud))
    return found


def _is_gpu(subcategory: str, cfg: NewMeterConfig) -> bool:
    first = subcategory.strip().lower().split(" ", 1)[0]
    return any(first.startswith(prefix) for prefix in cfg.gpu_series)


def _top(values: Mapping[str, float], n: int = 5) -> dict[str, float]:
    return {k: round(v, 2) for k, v in sorted(values.items(), key=lambda kv: -kv[1])[:n]}


def _rounded(values: Iterable[tuple[str, float]] | Mapping[str, float]) -> dict[str, float]:
    items = values.items() if isinstance(values, Mapping) else values
    return {k: round(v, 2) for k, v in items}
