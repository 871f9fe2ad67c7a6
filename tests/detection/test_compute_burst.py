"""Compute burst: a newcomer's GPU burst across new regions is one high-confidence alert that
names every resource; ordinary activity raises nothing; the alert grows while the episode goes on."""

from __future__ import annotations

import json
import random
from datetime import timedelta
from typing import Any

from shared.detection.base import Outcome, SubscriptionInput
from shared.detection.config import DetectionConfig
from shared.detection.detectors import load
from tests.detection.readings import (
    ALICE,
    BOB,
    CUSTOMER_TENANT,
    INTRUDER,
    NOW,
    PARTNER_ADMIN,
    PARTNER_TENANT,
    SUB,
    container_group,
    ordinary_history,
    scale_set,
    storage_write,
    subscription_input,
    vm_create,
    vm_id,
    vm_started,
)

DETECTOR = load("compute_burst")
CONFIG = DetectionConfig.from_mapping({"partner_tenant_id": PARTNER_TENANT})
REGIONS = ("eastus", "southcentralus", "westus2")


def burst(start: Any, count: int = 12, who: tuple[str, str] = INTRUDER, prefix: str = "miner") -> list[Any]:
    return [vm_create(f"{prefix}-{i}", "Standard_NC24ads_A100_v4", REGIONS[i % 3],
                      start + timedelta(minutes=i), who, rg="rg-gpu") for i in range(count)]


def run(data: SubscriptionInput, state: dict[str, Any] | None = None, config: Any = CONFIG) -> Outcome:
    return DETECTOR.detect(data, state or {}, config)


def test_newcomer_gpu_burst_in_new_regions_is_one_high_confidence_alert_naming_every_resource() -> None:
    events = burst(NOW - timedelta(minutes=40))
    outcome = run(subscription_input(events, baseline=ordinary_history()))
    assert len(outcome.findings) == 1
    finding = outcome.findings[0]
    assert (finding.detector, finding.type, finding.subscription_id) == ("compute_burst", "ComputeBurst", SUB)
    assert finding.customer_tenant_id == CUSTOMER_TENANT
    assert (finding.severity, finding.confidence, finding.count) == ("high", "high", 12)
    assert {r.resource_id for r in finding.resources} == {vm_id(f"miner-{i}", "rg-gpu").lower() for i in range(12)}
    assert {r.resource_type for r in finding.resources} == {"Microsoft.Compute/virtualMachines"}
    evidence = finding.evidence
    assert evidence["signals"] == ["new_principal", "new_size", "new_region", "count_over_threshold"]
    assert evidence["new_principals"] == [INTRUDER[0]]
    assert sorted(evidence["new_regions"]) == sorted(REGIONS)
    assert evidence["sizes"] == {"standard_nc24ads_a100_v4": 12}
    assert evidence["threshold"] == 5 and evidence["max_in_window"] == 12
    assert "threshold 5" in finding.description and INTRUDER[0] in finding.description
    assert finding.first_observed_at == NOW - timedelta(minutes=40)
    assert finding.last_observed_at == NOW - timedelta(minutes=29)
    json.dumps(evidence)  # JSON-safe
    assert finding.alert_id == f"{SUB}:{finding.episode}"
    assert ":" not in finding.episode and "/" not in finding.episode


def test_a_colleagues_ordinary_vm_in_the_burst_window_is_not_named() -> None:
    events = [*burst(NOW - timedelta(minutes=40)),
              vm_create("web-today", "Standard_D2s_v5", "westeurope", NOW - timedelta(minutes=35), ALICE)]
    [finding] = run(subscription_input(events, baseline=ordinary_history())).findings
    assert finding.count == 12 and vm_id("web-today").lower() not in {r.resource_id for r in finding.resources}
    assert finding.evidence["principals"] == [INTRUDER[1]]


def test_signals_of_different_creators_do_not_add_up() -> None:
    events = [vm_create("train-1", "Standard_NC6s_v3", "westeurope", NOW - timedelta(minutes=9), ALICE),
              vm_create("api-us", "Standard_D2s_v5", "eastus", NOW - timedelta(minutes=5), BOB)]
    assert run(subscription_input(events, baseline=ordinary_history())).findings == ()


def test_ordinary_day_to_day_activity_raises_nothing() -> None:
    history = ordinary_history()
    state = run(subscription_input([], baseline=history, now=NOW - timedelta(hours=1))).state
    today = [
        vm_started("web-today", NOW - timedelta(minutes=50), ALICE),
        vm_create("web-today", "Standard_D2s_v5", "westeurope", NOW - timedelta(minutes=49), ALICE),
        vm_create("api-today", "Standard_D4s_v5", "northeurope", NOW - timedelta(minutes=30), BOB),
        vm_create("jump-box", "Standard_B2ms", "westeurope", NOW - timedelta(minutes=20), PARTNER_ADMIN,
                  tenant=PARTNER_TENANT),
        storage_write("logs0", "westeurope", NOW - timedelta(minutes=10), BOB),
        vm_create("web-today", "Standard_D2s_v5", "westeurope", NOW - timedelta(minutes=5), ALICE,
                  status_code="OK"),  # an update of an existing VM, same size
    ]
    outcome = run(subscription_input(today), dict(state))
    assert outcome.findings == ()


def test_a_single_new_signal_alone_raises_nothing() -> None:
    # Alice's first GPU VM, in her usual region: one signal (new size), below min_signals
    events = [vm_create("train-1", "Standard_NC6s_v3", "westeurope", NOW - timedelta(minutes=5), ALICE)]
    assert run(subscription_input(events, baseline=ordinary_history())).findings == ()


def test_the_episode_grows_while_evidence_keeps_coming_and_a_new_one_starts_after_the_gap() -> None:
    first = run(subscription_input(burst(NOW - timedelta(minutes=30), 6), baseline=ordinary_history()))
    assert [f.count for f in first.findings] == [6]
    key = first.findings[0].episode
    # 40 minutes later the same principal adds three more (known by now, same size and regions)
    later = NOW + timedelta(minutes=40)
    more = burst(later - timedelta(minutes=5), 3, prefix="extra")
    second = run(subscription_input(more, now=later), dict(first.state))
    assert [(f.episode, f.count, len(f.resources)) for f in second.findings] == [(key, 9, 9)]
    assert second.findings[0].first_observed_at == first.findings[0].first_observed_at
    # a quiet run: no finding; the episode stays open until the gap has passed
    quiet = run(subscription_input([], now=later + timedelta(minutes=30)), dict(second.state))
    assert quiet.findings == () and quiet.state["episode"]["key"] == key
    # the gap (120 min) passes: the episode closes; a new burst in other new regions is a new alert
    closed = run(subscription_input([], now=later + timedelta(hours=3)), dict(quiet.state))
    assert "episode" not in closed.state
    far = later + timedelta(hours=5)
    again = [vm_create(f"late-{i}", "Standard_ND96asr_v4", "japaneast", far - timedelta(minutes=i), INTRUDER)
             for i in range(6)]
    third = run(subscription_input(again, now=far), dict(closed.state))
    assert len(third.findings) == 1 and third.findings[0].episode != key


def test_same_readings_and_state_give_the_same_outcome_whatever_the_order() -> None:
    events = burst(NOW - timedelta(minutes=40)) + ordinary_history(1, end=NOW)
    baseline = ordinary_history()
    shuffled = list(events)
    random.Random(7).shuffle(shuffled)
    one = run(subscription_input(events, baseline=baseline))
    two = run(subscription_input(shuffled, baseline=list(reversed(baseline))))
    assert one == two


def test_scale_up_of_a_scale_set_to_a_first_seen_gpu_size_counts_the_instances_added() -> None:
    baseline = [*ordinary_history(),
                scale_set("vmss-batch", "Standard_D2s_v5", "westeurope", NOW - timedelta(days=2), BOB,
                          capacity=2)]
    events = [scale_set("vmss-batch", "Standard_NC24ads_A100_v4", "westeurope",
                        NOW - timedelta(minutes=10), BOB, capacity=40, status_code="OK")]
    outcome = run(subscription_input(events, baseline=baseline))
    assert len(outcome.findings) == 1
    finding = outcome.findings[0]
    assert finding.evidence["signals"] == ["new_size", "count_over_threshold"]
    assert finding.evidence["units"] == 38 and finding.confidence == "medium"
    assert finding.resources[0].resource_type == "Microsoft.Compute/virtualMachineScaleSets"


def test_gpu_container_groups_by_a_newcomer_are_a_burst() -> None:
    events = [container_group(f"aci-{i}", "westeurope", NOW - timedelta(minutes=i), INTRUDER, gpu=True)
              for i in range(3)]
    outcome = run(subscription_input(events, baseline=ordinary_history()))
    assert [f.evidence["signals"] for f in outcome.findings] == [["new_principal", "new_size"]]
    assert outcome.findings[0].confidence == "medium"


def test_a_subscription_without_history_is_judged_by_sizes_and_counts_only() -> None:
    few = [vm_create(f"vm-{i}", "Standard_D2s_v5", "eastus", NOW - timedelta(minutes=i), ALICE) for i in range(3)]
    assert run(subscription_input(few)).findings == ()
    outcome = run(subscription_input(burst(NOW - timedelta(minutes=30))))
    assert [(f.confidence, f.evidence["signals"]) for f in outcome.findings] == [
        ("medium", ["new_size", "count_over_threshold"])]


def test_thresholds_come_from_the_configuration() -> None:
    strict = DetectionConfig.from_mapping({"compute_burst": {"min_signals": 4}})
    events = burst(NOW - timedelta(minutes=30), who=ALICE)  # known principal: three signals
    assert run(subscription_input(events, baseline=ordinary_history()), config=strict).findings == ()
    loose = DetectionConfig.from_mapping({"compute_burst": {"min_count": 20}})
    outcome = run(subscription_input(events, baseline=ordinary_history()), config=loose)
    assert outcome.findings[0].evidence["signals"] == ["new_size", "new_region"]
    # a section alone, or None (the defaults), are accepted too
    assert run(subscription_input(events, baseline=ordinary_history()), config=strict.compute_burst).findings == ()
    assert len(run(subscription_input(events, baseline=ordinary_history()), config=None).findings) == 1


def test_state_stays_bounded_for_a_busy_subscription() -> None:
    state: dict[str, Any] = {}
    rng = random.Random(3)
    regions = ["westeurope", "northeurope", "eastus", "westus2", "uksouth", "francecentral",
               "germanywestcentral", "swedencentral", "japaneast", "australiaeast"]
    sizes = [f"Standard_D{n}s_v5" for n in (2, 4, 8, 16, 32, 48, 64, 96)] + [
        f"Standard_NC{n}ads_A100_v4" for n in (24, 48, 96)] + [f"Standard_E{n}as_v5" for n in (2, 4, 8, 16)]
    for d in range(45, 0, -1):
        day_end = NOW - timedelta(days=d)
        events = []
        for i in range(300):  # 300 creations a day by 40 daily-new principals
            who = (f"user{d}-{i % 40}@contoso.com", f"{d:04d}{i % 40:04d}-0000-4000-8000-000000000000")
            events.append(vm_create(f"vm-{d}-{i}", rng.choice(sizes), rng.choice(regions),
                                    day_end - timedelta(minutes=rng.randrange(1440)), who,
                                    rg=f"rg-team-{i % 17}"))
        intruder = (f"intruder{d}@contoso.com", f"{d:04d}9999-0000-4000-8000-000000000000")
        events += [vm_create(f"gpu-{d}-{j}-with-a-long-resource-name", f"Standard_NC{d + 8}as_T4_v3",
                             regions[j % 10], day_end - timedelta(minutes=j % 60), intruder,
                             rg=f"rg-compute-{regions[j % 10]}") for j in range(150)]
        state = dict(run(subscription_input(events, now=day_end), state).state)
    size = len(json.dumps(state))
    assert size < 30_000, size
    assert len(state["episode"]["resources"]) == 100 and state["episode"]["count"] >= 150
