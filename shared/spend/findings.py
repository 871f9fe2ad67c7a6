"""Spend rules' conclusions as detector findings: one alert per rule, subject and episode.

The rules (``shared.spend.rules``) judge the latest day; this module gives each conclusion an
episode that stays the same while the anomaly goes on, so a spike that lasts three days is one
alert whose count grows, not three:

* spend spike: the first day of the current run of anomalous days (each earlier day judged
  against the series up to it);
* new subscription over its cap: the subscription's first day (one alert in its life);
* new meters: the first day any of the new meters or regions appears;
* micro-fraud: the earliest first day of the group's new subscriptions.

Pure: the same series gives the same findings.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime, time
from typing import Any, Final

from shared.alerts import AffectedResource
from shared.detection.base import Finding
from shared.spend.rules import SpendFinding, SpendRulesConfig, micro_fraud, new_meters, new_subscription, spike
from shared.spend.series import SpendDay

DETECTOR_OF: Final = {"spend_spike": "spend_spike", "new_subscription_over_cap": "spend_new_subscription",
                      "new_meters": "spend_new_meters", "micro_fraud": "spend_micro_fraud"}
TYPE_OF: Final = {"spend_spike": "SpendSpike", "new_subscription_over_cap": "NewSubscriptionOverCap",
                  "new_meters": "NewMeters", "micro_fraud": "SpendMicroFraud"}
MAX_WALK_BACK: Final = 14
DEFAULT_RULES: Final = SpendRulesConfig()


def rules_config(spend: Any) -> SpendRulesConfig:
    """The rules' thresholds from the policy's ``[detection.spend]`` (``shared.detection.config.SpendConfig``)."""
    from shared.spend.rules import MicroFraudConfig, NewMeterConfig, NewSubscriptionConfig, SpikeConfig

    return SpendRulesConfig(
        spike=SpikeConfig(baseline_days=spend.spike_baseline_days, min_history_days=spend.spike_min_history_days,
                          k=spend.spike_k, min_ratio=spend.spike_min_ratio, floor=spend.spike_floor),
        new_subscription=NewSubscriptionConfig(young_days=spend.young_days, daily_cap=spend.young_daily_cap,
                                               total_cap=spend.young_total_cap),
        new_meter=NewMeterConfig(recent_days=spend.new_meter_recent_days,
                                 new_region_min_history_days=spend.new_region_min_history_days),
        micro_fraud=MicroFraudConfig(window_days=spend.micro_fraud_window_days,
                                     min_new_subscriptions=spend.micro_fraud_min_new_subscriptions,
                                     small_daily=spend.micro_fraud_small_daily, min_total=spend.micro_fraud_min_total),
    )


def spend_findings(series: Mapping[str, Sequence[SpendDay]], cfg: SpendRulesConfig = DEFAULT_RULES) -> list[Finding]:
    """Every rule over every subscription's series (oldest day first), as findings."""
    found: list[Finding] = []
    for days in series.values():
        if not days:
            continue
        hit = spike(days, cfg.spike)
        if hit is not None:
            start, count = _run_start(days, lambda d: spike(d, cfg.spike) is not None)
            found.append(_finding(hit, episode=start, count=count))
        hit = new_subscription(days, cfg.new_subscription)
        if hit is not None:
            found.append(_finding(hit, episode=days[0].day, count=len(days)))
        hit = new_meters(days, cfg.new_meter)
        if hit is not None:
            first = _first_day_of(days, {*hit.evidence["new_meters"], *hit.evidence["new_regions"]})
            found.append(_finding(hit, episode=first, count=len(hit.evidence["new_meters"])
                                  + len(hit.evidence["new_regions"])))
    for hit in micro_fraud(series, cfg.micro_fraud):
        firsts = [series[s][0].day for s in hit.subscriptions if series.get(s)]
        found.append(_finding(hit, episode=min(firsts) if firsts else hit.day, count=len(hit.subscriptions)))
    return found


def _run_start(days: Sequence[SpendDay], fires: Callable[[Sequence[SpendDay]], bool]) -> tuple[date, int]:
    """The first day of the run of anomalous days ending with the latest, and its length."""
    count = 1
    while count < MAX_WALK_BACK and len(days) - count > 0 and fires(days[:len(days) - count]):
        count += 1
    return days[len(days) - count].day, count


def _first_day_of(days: Sequence[SpendDay], names: set[str]) -> date:
    for day in days:
        if names & ({*day.by_subcategory, *day.by_category, *day.by_region}):
            return day.day
    return days[-1].day


def _finding(hit: SpendFinding, *, episode: date, count: int) -> Finding:
    detector = DETECTOR_OF[hit.rule]
    is_group = hit.rule == "micro_fraud"
    first = datetime.combine(episode, time(), tzinfo=UTC)
    last = datetime.combine(hit.day, time(23, 59, 59), tzinfo=UTC)
    subject_key = hit.subject.replace(":", "-") if is_group and not hit.customer_id else ""
    return Finding(
        detector=detector, type=TYPE_OF[hit.rule], customer_tenant_id=hit.customer_id,
        subscription_id="" if is_group else hit.subject, episode=f"{detector}-{episode.isoformat()}",
        severity=hit.severity, confidence=hit.confidence, title=hit.title, description=hit.description,
        first_observed_at=first, last_observed_at=last, count=count,
        resources=tuple(AffectedResource(f"/subscriptions/{s}", "Microsoft.Resources/subscriptions")
                        for s in hit.subscriptions),
        evidence=dict(hit.evidence), subject_key=subject_key,
    )
