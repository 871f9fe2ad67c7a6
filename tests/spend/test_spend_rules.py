"""Issue 14 item 4: the spend rules on the default scenario's 60 days, and at their edges.

The scenario's usage (sandbox/billing.py, the same lines the export serves) is folded the way the
refresh folds it; the rules must name Litware's spike, Adatum's new subscription over its cap with
first-seen GPU meters, and Proseware's micro-fraud, and nothing for the ordinary customers.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

from sandbox import ids
from sandbox.billing import BillingData
from sandbox.scenario import load_scenario, resolve
from shared.spend.rules import (
    MicroFraudConfig,
    SpikeConfig,
    judge,
    micro_fraud,
    new_meters,
    new_subscription,
    spike,
)
from shared.spend.series import SpendDay, fold

TODAY = dt.date(2026, 12, 2)


def scenario_series() -> dict[str, list[SpendDay]]:
    section = resolve(load_scenario(), urls={})["graph"]["billing"]
    data = BillingData.from_section(section)
    data.today = TODAY
    days = fold(line for period in ("last", "current") for line in data.lines(period))
    series: dict[str, list[SpendDay]] = defaultdict(list)
    for (subscription, _day), spend in sorted(days.items()):
        series[subscription].append(spend)
    return dict(series)


def test_the_scenario_raises_the_spike_the_cap_the_gpu_meters_and_the_micro_fraud_and_nothing_else() -> None:
    findings = judge(scenario_series())
    fired = sorted((f.rule, f.subject) for f in findings)
    assert fired == sorted([
        ("spend_spike", ids.SUB_LITWARE_PROD),
        ("new_subscription_over_cap", ids.SUB_ADATUM_NEW),
        ("new_meters", ids.SUB_ADATUM_NEW),
        ("micro_fraud", f"reseller:{ids.RESELLER_PROSEWARE_MPN}"),
    ])
    spike_finding = next(f for f in findings if f.rule == "spend_spike")
    assert spike_finding.evidence["ratio"] > 5 and spike_finding.evidence["baseline"]["days"] >= 8
    assert spike_finding.evidence["series"][-1]["day"] == (TODAY - dt.timedelta(days=1)).isoformat()
    gpu = next(f for f in findings if f.rule == "new_meters")
    assert "NCads A100 v4 Series" in gpu.evidence["new_meters"]
    fraud = next(f for f in findings if f.rule == "micro_fraud")
    assert set(fraud.subscriptions) == set(ids.PROSEWARE_SUBSCRIPTIONS)
    assert set(fraud.evidence["customers"]) == set(ids.PROSEWARE_CUSTOMERS)


def days(values: list[float], *, start: dt.date = dt.date(2026, 10, 5), subscription: str = "s1",
         reseller: str = "") -> list[SpendDay]:
    out = []
    for n, value in enumerate(values):
        day = SpendDay(subscription, start + dt.timedelta(days=n), customer_id="c1", reseller_mpn_id=reseller,
                       currency="USD")
        day.add(value, "Virtual Machines", "eastus", "Dsv5 Series")
        out.append(day)
    return out


def weekly(weekday: float, weekend: float, weeks: int) -> list[float]:
    # 2026-10-05 is a Monday
    return [weekend if n % 7 >= 5 else weekday for n in range(weeks * 7)]


def test_a_busy_monday_after_a_quiet_weekend_is_not_a_spike_but_a_sunday_at_weekday_level_is() -> None:
    ordinary = weekly(400.0, 40.0, 4)  # four weeks from a Monday
    assert spike(days([*ordinary, 400.0])) is None  # a Monday like every Monday, 10x the weekend
    sunday_busy = [*ordinary, *weekly(400.0, 40.0, 1)[:6], 400.0]  # a Sunday at weekday level
    found = spike(days(sunday_busy))
    assert found is not None and found.evidence["baseline"]["kind"] == "weekend"


def test_small_numbers_stay_quiet_below_the_absolute_floor() -> None:
    assert spike(days([*[2.0] * 30, 20.0])) is None  # 10x, but only 18 above the median
    assert spike(days([*[2.0] * 30, 20.0]), SpikeConfig(floor=10.0)) is not None


def test_a_young_subscription_is_judged_by_caps_not_by_a_baseline() -> None:
    young = days([5.0, 700.0])
    assert spike(young) is None
    found = new_subscription(young)
    assert found is not None and found.evidence["broken"] == ["daily"]
    assert new_subscription(days([5.0] * 20 + [700.0])) is None  # old enough: the spike rule judges it


def test_a_gpu_meter_seen_for_weeks_is_not_new_but_a_first_seen_region_is() -> None:
    history = days([100.0] * 20)
    for day in history:
        day.add(50.0, "Virtual Machines", "eastus", "NCasT4 v3 Series")
    assert new_meters(history) is None
    latest = history[-1]
    latest.add(30.0, "Storage", "brazilsouth", "Premium SSD Managed Disks")
    found = new_meters(history)
    assert found is not None and list(found.evidence["new_regions"]) == ["brazilsouth"]


def test_micro_fraud_needs_enough_small_new_subscriptions_adding_up() -> None:
    start = dt.date(2026, 11, 28)
    group = {f"s{n}": days([60.0, 60.0, 60.0], start=start, subscription=f"s{n}", reseller="777") for n in range(5)}
    assert [f.subject for f in micro_fraud(group)] == ["reseller:777"]
    assert micro_fraud(dict(list(group.items())[:4])) == []  # four are not "many"
    assert micro_fraud(group, MicroFraudConfig(min_total=5000.0)) == []  # they do not add up
    old = {k: days([60.0] * 30, subscription=k, reseller="777") for k in group}
    assert micro_fraud(old) == []  # not new


def test_findings_keep_their_episode_while_the_anomaly_goes_on() -> None:
    from shared.spend.findings import spend_findings

    findings = {f.detector: f for f in spend_findings(scenario_series())}
    assert set(findings) == {"spend_spike", "spend_new_subscription", "spend_new_meters", "spend_micro_fraud"}
    assert findings["spend_micro_fraud"].subject_key == f"reseller-{ids.RESELLER_PROSEWARE_MPN}"
    assert findings["spend_new_subscription"].subscription_id == ids.SUB_ADATUM_NEW
    first = findings["spend_spike"]

    ordinary = weekly(400.0, 40.0, 4)
    one_day = spend_findings({"s1": days([*ordinary, 3000.0])})
    two_days = spend_findings({"s1": days([*ordinary, 3000.0, 3100.0])})
    assert [f.alert_id for f in one_day] == [f.alert_id for f in two_days]  # the same alert ...
    assert [f.count for f in two_days] == [2]  # ... that grew
    assert first.episode.startswith("spend_spike-") and first.resources[0].resource_id.endswith(ids.SUB_LITWARE_PROD)


def test_the_thresholds_live_in_the_policy_s_detection_table_and_mistakes_are_named() -> None:
    import pytest

    from shared.detection.config import DetectionConfig, DetectionConfigError
    from shared.spend.findings import rules_config, spend_findings

    strict = DetectionConfig.from_mapping({"spend": {"spike_min_ratio": 50.0, "young_daily_cap": 5000.0,
                                                     "young_total_cap": 50000.0}})
    found = {f.detector for f in spend_findings(scenario_series(), rules_config(strict.spend))}
    assert found == {"spend_new_meters", "spend_micro_fraud"}  # no spike at 50x, no cap broken
    with pytest.raises(DetectionConfigError, match=r"detection\.spend\.spike_floor"):
        DetectionConfig.from_mapping({"spend": {"spike_floor": -1}})
