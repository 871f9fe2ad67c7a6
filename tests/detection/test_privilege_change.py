"""Privilege change: a newcomer granting itself Owner is flagged; the partner's own grants and
grants to known principals are not; custom roles with '*' actions count once learned."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta
from typing import Any

from shared.detection.base import Outcome, SubscriptionInput
from shared.detection.config import DetectionConfig
from shared.detection.detectors import load
from tests.detection.readings import (
    ADMIN_AGENTS,
    ALICE,
    BOB,
    CONTRIBUTOR,
    INTRUDER,
    NOW,
    OWNER,
    PARTNER_ADMIN,
    PARTNER_TENANT,
    READER,
    SUB,
    UAA,
    ordinary_history,
    role_assignment,
    role_definition,
    subscription_input,
    vm_create,
)

DETECTOR = load("privilege_change")
CONFIG = DetectionConfig.from_mapping({"partner_tenant_id": PARTNER_TENANT})
STRANGER = "66666666-6666-4666-8666-666666666666"


def run(data: SubscriptionInput, state: dict[str, Any] | None = None, config: Any = CONFIG) -> Outcome:
    return DETECTOR.detect(data, state or {}, config)


def test_a_newcomer_granting_itself_owner_after_creating_vms_is_high_severity_and_confidence() -> None:
    events = [vm_create("miner-0", "Standard_NC24ads_A100_v4", "eastus", NOW - timedelta(minutes=30), INTRUDER),
              role_assignment(INTRUDER[1], OWNER, NOW - timedelta(minutes=20), INTRUDER, name="ra-owner")]
    outcome = run(subscription_input(events, baseline=ordinary_history()))
    assert len(outcome.findings) == 1
    finding = outcome.findings[0]
    assert (finding.detector, finding.type, finding.subscription_id) == ("privilege_change", "PrivilegeChange", SUB)
    assert (finding.severity, finding.confidence, finding.count) == ("high", "high", 1)
    assert [r.resource_id for r in finding.resources] == [
        f"/subscriptions/{SUB}/providers/microsoft.authorization/roleassignments/ra-owner"]
    assert finding.evidence["roles"] == ["Owner"] and finding.evidence["self_grant"] is True
    assert finding.evidence["principals"] == [INTRUDER[1]]
    assert "Owner" in finding.title and INTRUDER[0] in finding.description
    json.dumps(finding.evidence)


def test_the_partners_grants_and_grants_to_known_principals_raise_nothing() -> None:
    events = [
        # the partner's admin (partner tenant) grants Owner to a new customer user
        role_assignment(STRANGER, OWNER, NOW - timedelta(minutes=50), PARTNER_ADMIN, tenant=PARTNER_TENANT),
        # AdminAgents (ForeignGroup) get Owner
        role_assignment(ADMIN_AGENTS, OWNER, NOW - timedelta(minutes=40), ALICE, principal_type="ForeignGroup"),
        # Alice makes Bob (known for a week) Contributor
        role_assignment(BOB[1], CONTRIBUTOR, NOW - timedelta(minutes=30), ALICE),
        # a Reader grant to a stranger is not privileged
        role_assignment(STRANGER, READER, NOW - timedelta(minutes=20), ALICE),
        # a failed Owner grant changes nothing
        replace(role_assignment("77777777-7777-4777-8777-777777777777", OWNER, NOW - timedelta(minutes=10),
                                ALICE), status="failed"),
    ]
    assert run(subscription_input(events, baseline=ordinary_history())).findings == ()


def test_a_known_caller_granting_contributor_to_a_stranger_is_medium() -> None:
    events = [role_assignment(STRANGER, CONTRIBUTOR, NOW - timedelta(minutes=5), ALICE)]
    [finding] = run(subscription_input(events, baseline=ordinary_history())).findings
    assert (finding.severity, finding.confidence) == ("medium", "medium")


def test_a_custom_role_with_star_actions_counts_once_its_definition_was_seen() -> None:
    custom = "0a1b2c3d-4e5f-4a6b-8c7d-8e9f0a1b2c3d"
    harmless = "1a1b2c3d-4e5f-4a6b-8c7d-8e9f0a1b2c3d"
    baseline = [*ordinary_history(),
                role_definition(custom, "Everything", ["*"], NOW - timedelta(days=2), ALICE),
                role_definition(harmless, "VM operator", ["Microsoft.Compute/virtualMachines/start/action"],
                                NOW - timedelta(days=2), ALICE)]
    events = [role_assignment(STRANGER, harmless, NOW - timedelta(minutes=9), ALICE),
              role_assignment(STRANGER, custom, NOW - timedelta(minutes=8), ALICE)]
    [finding] = run(subscription_input(events, baseline=baseline)).findings
    assert finding.evidence["roles"] == ["Everything"] and finding.severity == "high"


def test_grants_within_the_gap_are_one_episode_and_a_principal_is_known_only_after_a_day() -> None:
    first = run(subscription_input([role_assignment(STRANGER, UAA, NOW - timedelta(minutes=5), ALICE)],
                                   baseline=ordinary_history()))
    key = first.findings[0].episode
    later = NOW + timedelta(minutes=30)
    # the stranger (seen 35 minutes ago as assignee) now makes a second stranger Owner: same episode
    other = "88888888-8888-4888-8888-888888888888"
    second = run(subscription_input([role_assignment(other, OWNER, later - timedelta(minutes=1),
                                                     ("", STRANGER))], now=later), dict(first.state))
    assert [(f.episode, f.count) for f in second.findings] == [(key, 2)]
    assert second.findings[0].confidence == "high"  # the caller is new too
    # two days later the stranger is known: granting it Owner again raises nothing
    much_later = NOW + timedelta(days=2)
    third = run(subscription_input([role_assignment(STRANGER, OWNER, much_later, ALICE)], now=much_later),
                dict(second.state))
    assert third.findings == () and "episode" not in third.state


def test_state_stays_bounded_and_outcomes_are_deterministic() -> None:
    state: dict[str, Any] = {}
    for d in range(40, 0, -1):
        at = NOW - timedelta(days=d)
        events = [vm_create(f"vm-{d}-{i}", "Standard_D2s_v5", "westeurope", at + timedelta(minutes=i),
                            (f"u{d}-{i}@contoso.com", f"{d:04d}{i:04d}-0000-4000-8000-000000000000"))
                  for i in range(100)]
        events += [role_assignment(f"{d:04d}{i:04d}-1111-4000-8000-000000000000", OWNER,
                                   at + timedelta(minutes=200 + i), ALICE) for i in range(50)]
        data = subscription_input(events, now=at + timedelta(hours=5))
        outcome = run(data, state)
        assert outcome == run(data, state)
        state = dict(outcome.state)
    size = len(json.dumps(state))
    assert size < 30_000, size
