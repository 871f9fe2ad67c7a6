"""The response policy engine: validation messages, first-match semantics, conditions, and the
effective-mode rules that hold whatever the policy says."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from shared.alerts import Alert
from shared.health import policy_health
from shared.response import catalogue
from shared.response.policy import (
    Decision,
    PolicyError,
    get_policy,
    load_policy,
    parse_policy,
)
from shared.settings import load_settings
from shared.sources.graph import parse as from_graph
from shared.sources.partner_center import parse as from_partner_center

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_POLICY = REPO_ROOT / "policy" / "default.toml"
CUSTOMER = "aaaaaaaa-0001-4000-8000-000000000001"
OTHER_CUSTOMER = "aaaaaaaa-0002-4000-8000-000000000002"
SUB = "bbbbbbbb-0001-4000-8000-000000000001"


def alert(**changes: Any) -> Alert:
    """A Partner Center new-events-model alert; keyword arguments override record fields."""
    record: dict[str, Any] = {
        "eventId": f"{SUB}_vm-gpu-01", "customerTenantId": CUSTOMER, "subscriptionId": SUB,
        "eventType": "NetworkConnectionsToCryptoMiningPools", "eventStatus": "Active", "severity": "High",
        "confidenceLevel": "High", "hitCount": "10", "isTest": "false",
        "affectedResources": [{"azureResourceId": f"/subscriptions/{SUB}/vm-gpu-01", "type": "vm"}],
    }
    record.update(changes)
    return from_partner_center({k: v for k, v in record.items() if v is not None})


def plan(decision: Decision) -> list[tuple[str, str]]:
    return [(a.action, a.mode) for a in decision.actions]


def rule(name: str, match: str = "", actions: str = '{ action = "notify", mode = "enforce" }') -> str:
    """A [[rules]] table; ``match`` is the inside of an inline table."""
    return f'[[rules]]\nname = "{name}"\nmatch = {{ {match} }}\nactions = [{actions}]\n'


def policy_of(*rules: str) -> str:
    return "version = 1\n" + "\n".join(rules)


def errors_of(text: str) -> list[str]:
    with pytest.raises(PolicyError) as caught:
        parse_policy(text, path="test.toml")
    assert str(caught.value).startswith("test.toml: ")
    return list(caught.value.errors)


# --- validation ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    (policy_of(rule("crypto-high", actions='{ action = "stop_vms", mode = "enforce" }')),
     ['rule "crypto-high": unknown action "stop_vms"', "valid actions: " + ", ".join(catalogue.names())]),
    (policy_of(rule("crypto-high", match='sevrity = "high"')),
     ['rule "crypto-high": unknown match field "sevrity" (did you mean "min_severity"?)',
      "valid match fields: source, type, category, min_severity, min_confidence, is_test, customers"]),
    (policy_of('[[rules]]\nname = "r"\nwhen = "always"\nactions = []\n'),
     ['rule "r": unknown field "when"', "valid fields: name, description, match, actions"]),
    (policy_of(rule("r", actions='{ action = "notify", mode = "auto" }')),
     ['rule "r": action "notify": unknown mode "auto"', "valid modes: enforce, dry-run, approve"]),
    (policy_of(rule("r", actions='{ action = "notify" }')),
     ['rule "r": action "notify": no mode', "valid modes: enforce, dry-run, approve"]),
    (policy_of(rule("r", match='min_severity = "severe"')),
     ['rule "r": min_severity must be one of informational, low, medium, high']),
    (policy_of(rule("r", match='min_confidence = "certain"')),
     ['rule "r": min_confidence must be one of low, medium, high']),
    (policy_of(rule("r", match="min_hit_count = -1")), ['rule "r": min_hit_count must be a whole number of 0 or more']),
    (policy_of(rule("r", match='min_hit_count = "10"')), ['rule "r": min_hit_count must be a whole number']),
    (policy_of(rule("r", match='category = "mining"')),
     ['rule "r": unknown category "mining" (did you mean "crypto_mining"?)',
      "valid categories: crypto_mining, anomalous_compute, suspicious_operations, service_health, compute_burst, "
      "privilege_change, quota_jump, micro_fraud, other"]),
    (policy_of(rule("r", match='source = "email"')), ['rule "r": unknown source "email"',
                                                      "valid sources: partner_center, graph"]),
    (policy_of(rule("r", match='statuses = ["open"]')),
     ['rule "r": unknown statuses "open"', "valid statuses: active, investigating, resolved, unknown"]),
    (policy_of(rule("r", match='is_test = "yes"')), ['rule "r": is_test must be true or false']),
    (policy_of(rule("r", match='customers = ["fabrikam"]')), ['rule "r": customers must list', "'fabrikam'"]),
    (policy_of(rule("r", actions='{ action = "notify", mode = "enforce", throttle_hours = "1h" }')),
     ['rule "r": action "notify": throttle_hours must be a number of 0 or more']),
    (policy_of(rule("r", actions='{ action = "notify", mode = "enforce", webhook = "yes" }')),
     ['rule "r": action "notify": webhook must be true or false']),
    (policy_of(rule("r", actions='{ action = "notify", mode = "enforce", to = ["boss"] }')),
     ['rule "r": action "notify": to must be a non-empty list of "partner", "customer"']),
    (policy_of(rule("r", actions='{ action = "stop_resources", mode = "approve", operation = "delete" }')),
     ['rule "r": action "stop_resources": operation must be one of "deallocate", "power_off"']),
    (policy_of(rule("r", actions='{ action = "investigate", mode = "enforce", lookback_hours = 24 }')),
     ['rule "r": action "investigate": unknown parameter "lookback_hours"', "valid parameters: none"]),
    (policy_of(rule("r", actions='{ action = "revoke_sessions", mode = "enforce", global_admins = true }')),
     ['unknown parameter "global_admins" (did you mean "include_global_admins"?)',
      "valid parameters: include_global_admins"]),
    (policy_of(rule("r", actions='{ action = "update_status", mode = "enforce", status = "resolved" }')),
     ['rule "r": action "update_status": status = "resolved" needs a reason',
      "valid reasons: fraud, ignore, legitimate"]),
    (policy_of(rule("r", actions='{ action = "notify", mode = "enforce" }, { action = "notify", mode = "dry-run" }')),
     ['rule "r": action "notify" is listed twice']),
    (policy_of(rule("r"), rule("r")), ['rule "r" (#2): the name is already used']),
    (policy_of('[[rules]]\nactions = []\n'), ["rule #1: name must be text"]),
    (policy_of('[[rules]]\nname = "r"\n'), ['rule "r": no actions']),
    ("version = 1\n", ["top level: no rules"]),
    ("version = 2\n" + rule("r"), ["top level: version must be 1"]),
    ("verison = 1\n" + rule("r"), ['top level: unknown field "verison" (did you mean "version"?)',
                                   "valid fields: version, rules"]),
])
def test_each_validation_error_names_the_rule_and_the_valid_choices(text: str, expected: list[str]) -> None:
    errors = errors_of(text)
    assert any(all(part in line for part in expected) for line in errors), errors


def test_toml_syntax_errors_give_the_line() -> None:
    errors = errors_of('version = 1\n[[rules]]\nname = "r"\nactions = [\n'
                       '  { action = "notify" mode = "enforce" },\n]\n')
    assert len(errors) == 1
    assert errors[0].startswith("TOML syntax error:") and "line 5" in errors[0]


def test_every_problem_is_reported_at_once() -> None:
    text = policy_of(
        rule("a", match='min_severity = "severe"', actions='{ action = "stop_vms", mode = "enforce" }'),
        rule("b", actions='{ action = "notify", mode = "sometimes" }'),
    )
    errors = errors_of(text)
    assert len(errors) == 3
    assert [e.split(":")[0] for e in errors] == ['rule "a"', 'rule "a"', 'rule "b"']


def test_a_missing_or_unreadable_file_says_what_to_set(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="file not found; set POLICY_PATH"):
        load_policy(tmp_path / "nope.toml")
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(PolicyError, match="not UTF-8"):
        load_policy(binary)


def test_unreachable_rules_and_a_missing_catch_all_are_warnings_not_errors() -> None:
    policy = parse_policy(policy_of(rule("everything"), rule("crypto", match='category = "crypto_mining"')))
    assert any('"crypto" can never match' in w and '"everything"' in w for w in policy.warnings)
    resolved_only = parse_policy(policy_of(rule("resolved", match='statuses = ["resolved"]'), rule("rest")))
    assert not any("never match" in w for w in resolved_only.warnings)
    no_catch_all = parse_policy(policy_of(rule("crypto", match='category = "crypto_mining"')))
    assert any("no catch-all rule" in w for w in no_catch_all.warnings)


# --- matching -----------------------------------------------------------------------------------


def test_first_match_wins_and_later_rules_are_not_tried() -> None:
    first = rule("crypto", match='category = "crypto_mining"', actions='{ action = "investigate", mode = "enforce" }')
    second = rule("high", match='min_severity = "high"', actions='{ action = "stop_resources", mode = "approve" }')
    decision = parse_policy(policy_of(first, second)).evaluate(alert())
    assert decision.rule == "crypto" and plan(decision) == [("investigate", "enforce")]
    assert not any('rule "high"' in line for line in decision.explanation)
    assert any("first match wins" in line for line in decision.explanation)
    swapped = parse_policy(policy_of(second, first)).evaluate(alert())
    assert swapped.rule == "high" and plan(swapped) == [("stop_resources", "approve")]


def test_actions_keep_the_policy_order_and_get_default_parameters() -> None:
    actions = ('{ action = "notify", mode = "enforce", to = "customer" }, '
               '{ action = "stop_resources", mode = "dry-run" }, { action = "update_status", mode = "enforce" }')
    decision = parse_policy(policy_of(rule("r", actions=actions))).evaluate(alert())
    assert [a.action for a in decision.actions] == ["notify", "stop_resources", "update_status"]
    notify, stop, status = decision.actions
    assert dict(notify.params) == {"to": ("customer",), "webhook": True, "throttle_hours": 1.0}
    assert dict(stop.params) == {"operation": "deallocate"} and stop.mode == "dry-run"
    assert status.params["status"] == "investigating"


@pytest.mark.parametrize(("pattern", "alert_type", "matches"), [
    ('"NetworkConnectionsToCryptoMiningPools"', "networkConnectionsToCryptoMiningPools", True),
    ('"*anomal*"', "VM_AnomalousDeployment", True),
    ('["cryptomining", "VM_*"]', "VM_AnomalousDeployment", True),
    ('"VM_*"', "AzureBatch_AnomalousDeployment", False),
    ('"UsageAnomalyDetection"', "UsageAnomalyDetectionV2", False),
])
def test_type_matches_names_and_glob_patterns_case_insensitively(pattern: str, alert_type: str,
                                                                 matches: bool) -> None:
    policy = parse_policy(policy_of(rule("typed", match=f"type = {pattern}")))
    assert (policy.evaluate(alert(eventType=alert_type)).rule == "typed") is matches


@pytest.mark.parametrize(("condition", "changes", "matches"), [
    ('min_severity = "high"', {"severity": "Medium"}, False),
    ('min_severity = "medium"', {"severity": "high"}, True),
    ('min_severity = "low"', {"severity": "Informational"}, False),
    ('min_severity = "high"', {"severity": None}, True),  # legacy events carry no severity: counts as high
    ('min_confidence = "medium"', {"confidenceLevel": "Low"}, False),
    ('min_confidence = "medium"', {"confidenceLevel": "High"}, True),
    ("min_hit_count = 10", {"hitCount": "10"}, True),
    ("min_hit_count = 11", {"hitCount": "10"}, False),
    ("min_hit_count = 0", {"hitCount": None}, False),
    ("is_test = true", {"isTest": "false"}, False),
    (f'customers = ["{CUSTOMER.upper()}"]', {}, True),
    (f'customers = ["{OTHER_CUSTOMER}"]', {}, False),
    (f'subscriptions = ["{SUB}"]', {}, True),
    (f'subscriptions = ["{SUB}"]', {"subscriptionId": None}, False),
    ('source = "graph"', {}, False),
    ('category = ["anomalous_compute"]', {"eventType": "VirtualMachineDeploymentAnomaly"}, True),
    ('statuses = ["investigating"]', {"eventStatus": "Active"}, False),
    ('statuses = ["investigating"]', {"eventStatus": "Investigating"}, True),
])
def test_conditions_and_thresholds(condition: str, changes: dict[str, Any], matches: bool) -> None:
    policy = parse_policy(policy_of(rule("r", match=condition)))
    decision = policy.evaluate(alert(**changes))
    assert (decision.rule == "r") is matches
    field = condition.split(" =", maxsplit=1)[0]
    assert any(line.strip().startswith("yes" if matches else "no") and field in line for line in decision.explanation)


def test_source_matches_graph_alerts() -> None:
    graph_alert = from_graph({"id": "g1", "customerTenantId": CUSTOMER, "alertType": "cryptoMining",
                              "status": "active", "severity": "high"})
    policy = parse_policy(policy_of(rule("graph-only", match='source = "graph"')))
    assert policy.evaluate(graph_alert).rule == "graph-only"


def test_customer_tags_match_any_of_the_given_tags_case_insensitively() -> None:
    policy = parse_policy(policy_of(rule("lab", match='customer_tags = ["Lab", "sandbox"]',
                                         actions='{ action = "investigate", mode = "dry-run" }'), rule("rest")))
    assert policy.evaluate(alert(), tags=frozenset({"lab"})).rule == "lab"
    assert policy.evaluate(alert(), tags=frozenset({"production", "SANDBOX"})).rule == "lab"
    assert policy.evaluate(alert(), tags=frozenset({"production"})).rule == "rest"
    assert policy.evaluate(alert()).rule == "rest"


def test_an_unknown_type_falls_to_the_catch_all_rule() -> None:
    policy = parse_policy(policy_of(rule("crypto", match='category = "crypto_mining"',
                                         actions='{ action = "stop_resources", mode = "approve" }'),
                                    rule("default")))
    decision = policy.evaluate(alert(eventType="QuotaSpikeDetectedSomewhereNew", severity=None))
    assert decision.rule == "default" and plan(decision) == [("notify", "enforce")]


def test_without_a_catch_all_an_unmatched_alert_still_gets_a_notification() -> None:
    policy = parse_policy(policy_of(rule("crypto", match='category = "crypto_mining"')))
    decision = policy.evaluate(alert(eventType="SomethingNew"))
    assert decision.rule is None and decision.fallback
    assert plan(decision) == [("notify", "enforce")]
    assert any("built-in fallback" in line for line in decision.explanation)


def test_a_rule_with_no_actions_matches_and_does_nothing() -> None:
    policy = parse_policy(policy_of(rule("quiet", match=f'customers = ["{CUSTOMER}"]', actions=""), rule("rest")))
    decision = policy.evaluate(alert())
    assert decision.rule == "quiet" and decision.actions == () and not decision.fallback


# --- effective-mode rules -----------------------------------------------------------------------


EVERYTHING = ", ".join(f'{{ action = "{a}", mode = "enforce" }}' for a in catalogue.names())


def test_a_test_alert_gets_only_a_notification_marked_as_a_test() -> None:
    policy = parse_policy(policy_of(rule("all", actions=EVERYTHING)))
    decision = policy.evaluate(alert(isTest="true"), allow_automatic_cancellation=True)
    assert plan(decision) == [("notify", "enforce")]
    assert decision.actions[0].test
    assert {d.action for d in decision.dropped} == set(catalogue.names()) - {"notify"}
    assert all("test alert" in d.reason for d in decision.dropped)


def test_a_test_alert_is_notified_even_when_its_rule_does_not_notify() -> None:
    policy = parse_policy(policy_of(
        rule("contain", actions='{ action = "stop_resources", mode = "enforce" }'),
    ))
    decision = policy.evaluate(alert(isTest="true"))
    assert plan(decision) == [("notify", "enforce")] and decision.actions[0].test
    assert [d.action for d in decision.dropped] == ["stop_resources"]
    quiet = parse_policy(policy_of(rule("quiet", actions=""))).evaluate(alert(isTest="true"))
    assert plan(quiet) == [("notify", "enforce")] and quiet.actions[0].test


def test_a_test_alert_keeps_the_recipients_and_mode_its_rule_gives_notify() -> None:
    policy = parse_policy(policy_of(rule("r", actions='{ action = "notify", mode = "dry-run", to = "customer" }')))
    decision = policy.evaluate(alert(isTest="true"))
    assert plan(decision) == [("notify", "dry-run")] and decision.actions[0].params["to"] == ("customer",)


def test_cancellation_stays_approve_unless_automatic_cancellation_is_allowed() -> None:
    cancel = '{ action = "cancel_azure_subscription", mode = "enforce" }'
    policy = parse_policy(policy_of(rule("cancel", actions=cancel)))
    held = policy.evaluate(alert())
    assert plan(held) == [("cancel_azure_subscription", "approve")]
    assert held.actions[0].requested_mode == "enforce"
    assert "ALLOW_AUTOMATIC_CANCELLATION" in held.actions[0].reason
    assert any("enforce -> approve" in line for line in held.explanation)
    allowed = policy.evaluate(alert(), allow_automatic_cancellation=True)
    assert plan(allowed) == [("cancel_azure_subscription", "enforce")]
    dry = parse_policy(policy_of(rule("c", actions='{ action = "cancel_azure_subscription", mode = "dry-run" }')))
    assert plan(dry.evaluate(alert())) == [("cancel_azure_subscription", "dry-run")]


def test_a_resolved_alert_matches_only_rules_that_ask_for_resolved_and_keeps_read_only_actions() -> None:
    resolved = alert(eventStatus="Resolved", resolvedReason="Fraud")
    plain = parse_policy(policy_of(rule("all", actions=EVERYTHING)))
    decision = plain.evaluate(resolved)
    assert decision.rule is None and not decision.fallback and decision.actions == ()
    asks = parse_policy(policy_of(rule("after", match='statuses = ["resolved"]', actions=EVERYTHING)))
    kept = asks.evaluate(resolved, allow_automatic_cancellation=True)
    assert plan(kept) == [("notify", "enforce"), ("investigate", "enforce")]
    assert {d.action for d in kept.dropped} == set(catalogue.names()) - {"notify", "investigate"}


# --- the shipped default policy -----------------------------------------------------------------


@pytest.fixture(scope="module")
def default_policy() -> Any:
    return load_policy(DEFAULT_POLICY)


def test_the_default_policy_loads_clean(default_policy: Any) -> None:
    assert default_policy.path == "policy/default.toml"
    assert len(default_policy.rules) == 6 and default_policy.warnings == ()


def test_default_policy_on_high_crypto_mining_investigates_now_and_contains_on_approval(default_policy: Any) -> None:
    decision = default_policy.evaluate(alert())
    assert decision.rule == "crypto-mining-high"
    assert plan(decision) == [
        ("update_status", "enforce"), ("investigate", "enforce"), ("notify", "enforce"),
        ("stop_resources", "approve"), ("revoke_sessions", "approve"), ("rotate_credentials", "approve"),
        ("suspend_subscription", "approve"),
    ]
    assert decision.actions[0].params["status"] == "investigating"
    assert not any(a.action == "cancel_azure_subscription" for a in decision.actions)
    legacy = default_policy.evaluate(alert(eventType=None, severity=None, confidenceLevel=None))
    assert legacy.rule == "crypto-mining-high"


def test_default_policy_on_medium_anomalous_compute_investigates_and_notifies(default_policy: Any) -> None:
    decision = default_policy.evaluate(alert(eventType="VirtualMachineDeploymentAnomaly", severity="Medium"))
    assert decision.rule == "fraud-medium-low"
    assert plan(decision) == [("investigate", "enforce"), ("notify", "enforce")]


def test_default_policy_on_an_unknown_type_notifies(default_policy: Any) -> None:
    decision = default_policy.evaluate(alert(eventType="QuotaExceededOnSomethingNew", severity="High"))
    assert decision.rule == "notify-everything-else"
    assert plan(decision) == [("notify", "enforce")]


def test_default_policy_on_a_test_alert_sends_one_test_notification(default_policy: Any) -> None:
    decision = default_policy.evaluate(alert(isTest="true"))
    assert plan(decision) == [("notify", "enforce")] and decision.actions[0].test
    assert len(decision.dropped) == 6


def test_a_decision_serialises_to_json(default_policy: Any) -> None:
    doc = json.loads(json.dumps(default_policy.evaluate(alert()).as_dict()))
    assert doc["rule"] == "crypto-mining-high" and doc["policy"] == "policy/default.toml"
    assert doc["actions"][2] == {"action": "notify", "mode": "enforce", "requested_mode": "enforce",
                                 "params": {"to": ["partner", "customer"], "webhook": True, "throttle_hours": 24.0},
                                 "test": False, "reason": 'rule "crypto-mining-high"'}
    assert len(doc["policy_sha256"]) == 64 and doc["explanation"]


# --- caching and health -------------------------------------------------------------------------


def test_get_policy_is_cached_until_the_file_changes(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(policy_of(rule("one")), encoding="utf-8")
    first = get_policy(path)
    assert get_policy(path) is first
    path.write_text(policy_of(rule("two")), encoding="utf-8")
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert get_policy(path).rules[0].name == "two"
    path.write_text("rules = [", encoding="utf-8")
    with pytest.raises(PolicyError, match="TOML syntax error"):
        get_policy(path)


def test_policy_health_reports_rules_or_the_first_error(tmp_path: Path) -> None:
    def settings_for(path: Path) -> Any:
        return load_settings({"AzureWebJobsStorage": "UseDevelopmentStorage=true", "POLICY_PATH": str(path)},
                             local_settings=tmp_path / "none.json")

    ok = policy_health(settings_for(DEFAULT_POLICY))
    assert ok.ok and ok.detail == "6 rules from policy/default.toml"
    bad = tmp_path / "bad.toml"
    bad.write_text(policy_of(rule("r", actions='{ action = "stop_vms", mode = "enforce" }'),
                             rule("s", actions='{ action = "notify", mode = "auto" }')), encoding="utf-8")
    failing = policy_health(settings_for(bad))
    assert not failing.ok
    assert 'unknown action "stop_vms"' in failing.detail and "and 1 more" in failing.detail


def test_every_policy_example_in_the_docs_is_valid() -> None:
    import re

    doc = (REPO_ROOT / "docs" / "policy.md").read_text(encoding="utf-8")
    examples = [b for b in re.findall(r"```toml\n(.*?)```", doc, re.S) if "[[rules]]" in b]
    assert len(examples) >= 3
    for example in examples:
        assert parse_policy(example, path="docs/policy.md").rules
