"""Micro-fraud: a reseller's burst of new customers, or many small subscriptions adding up, is one
alert per reseller (or partner user) and episode; the usual pace raises nothing."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from shared.detection.base import AuditRecord, Outcome, PartnerInput, Target
from shared.detection.detectors import load
from tests.detection.readings import NOW, audit

DETECTOR = load("micro_fraud")
RESELLER = "5512345"


def run(records: list[AuditRecord], state: Any = None, *, baseline: list[AuditRecord] | None = None,
        now: Any = NOW, targets: tuple[Target, ...] = ()) -> Outcome:
    data = PartnerInput(now=now, records=tuple(records), baseline=tuple(baseline or ()), targets=targets)
    return DETECTOR.detect(data, dict(state or {}), None)


def usual_pace(days: int = 14) -> list[AuditRecord]:
    """Two new customers a day through the reseller, each with an Azure plan order; one direct a week."""
    records = []
    for d in range(days, 0, -1):
        for i in range(2):
            at = NOW - timedelta(days=d, hours=3 * i)
            records.append(audit("AddCustomer", "Customer", at, customer_id=f"c-{d}-{i}", reseller=RESELLER,
                                 customer_name=f"Customer {d}-{i}"))
            records.append(audit("CreateOrder", "Order", at + timedelta(minutes=5), customer_id=f"c-{d}-{i}",
                                 reseller=RESELLER, quantity=1))
    return records


def test_the_usual_pace_raises_nothing() -> None:
    state = run([], baseline=usual_pace()).state
    today = [audit("AddCustomer", "Customer", NOW - timedelta(minutes=30), customer_id="c-new", reseller=RESELLER),
             audit("CreateOrder", "Order", NOW - timedelta(minutes=20), customer_id="c-new", reseller=RESELLER,
                   quantity=25),
             audit("UpdateSubscription", "Subscription", NOW - timedelta(minutes=10), customer_id="c-1-1")]
    assert run(today, state).findings == ()


def test_a_burst_of_new_customers_through_one_reseller_is_one_growing_alert() -> None:
    state = run([], baseline=usual_pace()).state
    burst = [audit("add_customer", "customer", NOW - timedelta(minutes=50 - i), customer_id=f"x-{i}",
                   customer_name=f"Shell {i}", reseller=RESELLER) for i in range(8)]
    outcome = run(burst, state)
    [finding] = outcome.findings
    assert (finding.detector, finding.type) == ("micro_fraud", "MicroFraud")
    assert finding.subject_key == f"reseller-{RESELLER}"
    assert finding.alert_id == f"reseller-{RESELLER}:{finding.episode}"
    assert finding.evidence["rules"] == ["customer_burst"] and finding.count == 8
    assert finding.evidence["peaks"]["customer_burst"] == [8, 5]
    assert "Indirect reseller 5512345: 8 new customers" in finding.description
    json.dumps(finding.evidence)
    more = [audit("AddCustomer", "Customer", NOW + timedelta(minutes=5), customer_id="x-9", reseller=RESELLER)]
    again = run(more, outcome.state, now=NOW + timedelta(minutes=10))
    assert [(f.episode, f.count) for f in again.findings] == [(finding.episode, 9)]


def test_many_small_subscriptions_add_up_per_partner_user_when_there_is_no_reseller() -> None:
    records = [audit("CreateOrder", "Order", NOW - timedelta(hours=20) + timedelta(minutes=50 * i),
                     customer_id=f"d-{i}", quantity=1, user="night@fabrikampartner.onmicrosoft.com")
               for i in range(22)]
    [finding] = run(records, {"learned": True}).findings
    assert finding.subject_key == "user-night@fabrikampartner.onmicrosoft.com"
    assert finding.evidence["rules"] == ["small_subscriptions_add_up"]


def test_the_reseller_comes_from_the_watched_subscriptions_when_the_record_has_none() -> None:
    targets = tuple(Target(customer_tenant_id=f"x-{i}", subscription_id=f"s-{i}", reseller_id=RESELLER)
                    for i in range(6))
    burst = [audit("AddCustomer", "Customer", NOW - timedelta(minutes=30 - i), customer_id=f"x-{i}")
             for i in range(6)]
    [finding] = run(burst, {"learned": True}, targets=targets).findings
    assert finding.subject_key == f"reseller-{RESELLER}"


def test_state_stays_bounded() -> None:
    state: Any = {}
    for d in range(40, 0, -1):
        records = [audit("CreateOrder", "Order", NOW - timedelta(days=d, minutes=i * 7), customer_id=f"c{d}-{i}",
                         reseller=str(5_000_000 + i % 80), quantity=1) for i in range(200)]
        state = run(records, state, now=NOW - timedelta(days=d)).state
    assert len(json.dumps(state)) < 30_000
