"""Safety properties of the shipped default policy over arbitrary alerts: nothing destructive is
ever enforced, a test alert only ever gets one test notification, and no open alert goes unseen."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.response import catalogue
from shared.response.policy import load_policy
from shared.sources.partner_center import parse as from_partner_center

DEFAULT_POLICY = load_policy(Path(__file__).resolve().parents[2] / "policy" / "default.toml")
KNOWN_TYPES = ["NetworkConnectionsToCryptoMiningPools", "UsageAnomalyDetection", "VirtualMachineDeploymentAnomaly",
               "ServiceHealthSecurityAdvisory", "ARM_SuspiciousOperations", "CryptoMining", "LegacyFraudEvent"]


records = st.fixed_dictionaries({
    "eventId": st.just("e1"),
    "customerTenantId": st.just("aaaaaaaa-0001-4000-8000-000000000001"),
    "eventType": st.one_of(st.none(), st.sampled_from(KNOWN_TYPES), st.text(max_size=40)),
    "eventStatus": st.one_of(st.none(), st.sampled_from(["Active", "Investigating", "Resolved", "Weird"])),
    "severity": st.one_of(st.none(), st.sampled_from(["Informational", "Low", "Medium", "High", "Critical"])),
    "confidenceLevel": st.one_of(st.none(), st.sampled_from(["Low", "Medium", "High"])),
    "hitCount": st.one_of(st.none(), st.integers(0, 10**6).map(str)),
    "isTest": st.sampled_from(["true", "false", "True", ""]),
})


@settings(max_examples=300, deadline=None)
@given(record=records, allow_cancellation=st.booleans(), tags=st.frozensets(st.sampled_from(["lab", "vip"])))
def test_default_policy_safety(record: dict[str, Any], allow_cancellation: bool, tags: frozenset[str]) -> None:
    alert = from_partner_center({k: v for k, v in record.items() if v is not None})
    decision = DEFAULT_POLICY.evaluate(alert, tags=tags, allow_automatic_cancellation=allow_cancellation)
    enforced = {a.action for a in decision.actions if a.mode == "enforce"}
    assert enforced <= {*catalogue.read_only(), "update_status"}
    assert all(a.action != "cancel_azure_subscription" for a in decision.actions)
    if alert.is_test:
        assert [(a.action, a.test) for a in decision.actions] == [("notify", True)]
    elif alert.status != "resolved":
        assert any(a.action == "notify" and a.mode == "enforce" for a in decision.actions)
    else:
        assert {a.action for a in decision.actions} <= set(catalogue.read_only())
