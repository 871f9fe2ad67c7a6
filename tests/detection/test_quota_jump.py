"""Quota jump: a family's cores jumping against its limit, or a region's first use, is one alert;
ordinary drift and the first run raise nothing."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from shared.detection.base import Outcome, QuotaReading
from shared.detection.detectors import load
from tests.detection.readings import NOW, subscription_input

DETECTOR = load("quota_jump")


def usages(at: datetime, rows: dict[tuple[str, str], tuple[int, int]]) -> tuple[QuotaReading, ...]:
    """Rows of Microsoft.Compute/locations/{loc}/usages: (location, name.value) -> (currentValue, limit)."""
    fixed = [QuotaReading(location=loc, name=name, current=cur, limit=limit, read_at=at,
                          display_name=f"{name} vCPUs") for (loc, name), (cur, limit) in rows.items()]
    regions = {loc for loc, _ in rows}
    fixed += [QuotaReading(location=loc, name="virtualMachines", current=3, limit=25000, read_at=at,
                           display_name="Virtual Machines") for loc in sorted(regions)]
    return tuple(fixed)


ORDINARY = {("westeurope", "cores"): (12, 350), ("westeurope", "standardDSv5Family"): (10, 100),
            ("westeurope", "standardBSFamily"): (2, 100), ("eastus", "cores"): (0, 350)}


def run(at: datetime, rows: dict[tuple[str, str], tuple[int, int]], state: Any = None) -> Outcome:
    return DETECTOR.detect(subscription_input([], now=at, quotas=usages(at, rows)), dict(state or {}), None)


def test_first_run_learns_and_ordinary_drift_raises_nothing() -> None:
    first = run(NOW, ORDINARY)
    assert first.findings == ()
    drift = {**ORDINARY, ("westeurope", "cores"): (20, 350), ("westeurope", "standardDSv5Family"): (18, 100)}
    assert run(NOW + timedelta(minutes=15), drift, first.state).findings == ()


def test_a_gpu_family_jump_and_a_new_region_are_one_alert_measured_against_the_limit() -> None:
    first = run(NOW, ORDINARY)
    later = NOW + timedelta(minutes=15)
    burst = {**ORDINARY, ("westeurope", "standardNCADSA100v4Family"): (96, 150),
             ("westeurope", "cores"): (108, 350), ("eastus", "cores"): (48, 350),
             ("eastus", "standardNCADSA100v4Family"): (48, 150)}
    [finding] = run(later, burst, first.state).findings
    rules = {(o["rule"], o["location"], o["name"]) for o in finding.evidence["observations"]}
    assert ("jump", "westeurope", "standardNCADSA100v4Family") in rules
    assert ("first_use", "eastus", "cores") in rules
    assert ("jump", "westeurope", "cores") not in rules  # the total's rise (96 of 350) is below 25 %
    jump = next(o for o in finding.evidence["observations"] if o["rule"] == "jump" and o["location"] == "westeurope")
    assert (jump["previous"], jump["current"], jump["limit"], jump["share_of_limit"]) == (0, 96, 150, 0.64)
    assert (finding.severity, finding.confidence) == ("high", "high")
    assert "0 -> 96 of 150 cores" in finding.description
    json.dumps(finding.evidence)
    # the next reading, 15 minutes on, rises again: same episode, count grows
    more = {**burst, ("westeurope", "standardNCADSA100v4Family"): (144, 150)}
    again = run(later + timedelta(minutes=15), more, run(later, burst, first.state).state)
    assert [(f.episode, f.count) for f in again.findings] == [(finding.episode, finding.count + 1)]


def test_state_stays_bounded() -> None:
    state: Any = {}
    regions = [f"region{i}" for i in range(60)]
    for step in range(30):
        at = NOW + timedelta(hours=step)
        rows = {(r, f"family{f}Family"): ((step * 7 + f) % 90, 100) for r in regions for f in range(6)}
        rows.update({(r, "cores"): (50, 350) for r in regions})
        state = run(at, rows, state).state
    assert len(json.dumps(state)) < 30_000
