"""The [detection] table lives in the policy file: `policy check` names its mistakes with the
others, the compiled policy carries it, and the default rules answer detector alerts."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from datetime import timedelta
from pathlib import Path

import pytest

from shared.detection.config import DEFAULT, DetectionConfig
from shared.detection.detectors import load
from shared.response.policy import PolicyError, load_policy, parse_policy
from shared.sources import detectors as detector_source
from tests.detection.readings import INTRUDER, NOW, OWNER, ordinary_history, role_assignment, subscription_input
from tests.detection.test_compute_burst import burst
from tests.response.test_policy_cli import base_env

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_POLICY = REPO_ROOT / "policy" / "default.toml"
RULE = '[[rules]]\nname = "all"\nactions = [{ action = "notify", mode = "enforce" }]\n'


def test_the_compiled_policy_carries_the_detection_table() -> None:
    policy = parse_policy("version = 1\n" + RULE + "[detection]\nepisode_gap_minutes = 45\n"
                          "[detection.compute_burst]\nmin_count = 9\n")
    assert policy.detection.section("compute_burst").min_count == 9
    assert policy.detection.section("quota_jump").episode_gap_minutes == 45
    assert parse_policy("version = 1\n" + RULE).detection == DEFAULT


def test_detection_mistakes_are_reported_by_dotted_name_with_the_rules_mistakes() -> None:
    text = ('version = 1\n[[rules]]\nname = "bad"\nmatch = { min_severity = "severe" }\n'
            'actions = [{ action = "notify", mode = "enforce" }]\n'
            '[detection]\nlookback_days = 0\n[detection.compute_burst]\nmin_signal = 2\n')
    with pytest.raises(PolicyError) as caught:
        parse_policy(text, path="p.toml")
    errors = caught.value.errors
    assert len(errors) == 3
    assert errors[0].startswith('rule "bad": min_severity')
    assert errors[1].startswith("detection.lookback_days: 0 is out of range")
    assert errors[2].startswith("detection.compute_burst.min_signal: unknown setting")


def test_the_commented_example_in_the_default_policy_is_the_defaults() -> None:
    text = DEFAULT_POLICY.read_text(encoding="utf-8")
    block = text[text.index("# [detection]"):]
    uncommented = "\n".join(line[2:] if line.startswith("# ") else "" for line in block.splitlines())
    assert DetectionConfig.from_mapping(tomllib.loads(uncommented)["detection"]) == DEFAULT
    assert load_policy(DEFAULT_POLICY).detection == DEFAULT


def test_the_default_policy_answers_a_high_confidence_compute_burst_like_crypto_mining() -> None:
    policy = load_policy(DEFAULT_POLICY)
    [finding] = load("compute_burst").detect(
        subscription_input(burst(NOW - timedelta(minutes=40)), baseline=ordinary_history()), {}, None).findings
    alert = detector_source.parse(detector_source.to_record(finding))
    decision = policy.evaluate(alert)
    assert decision.rule == "compute-burst-high"
    planned = {(a.action, a.mode) for a in decision.actions}
    assert {("investigate", "enforce"), ("notify", "enforce"), ("stop_resources", "approve")} <= planned
    # a medium-confidence burst is only reported
    medium = detector_source.parse({**detector_source.to_record(finding), "confidence": "medium"})
    assert policy.evaluate(medium).rule == "notify-everything-else"


def test_the_default_policy_investigates_and_notifies_a_privilege_change() -> None:
    events = [role_assignment(INTRUDER[1], OWNER, NOW - timedelta(minutes=5), INTRUDER)]
    [finding] = load("privilege_change").detect(subscription_input(events, baseline=ordinary_history()),
                                                {}, None).findings
    decision = load_policy(DEFAULT_POLICY).evaluate(detector_source.parse(detector_source.to_record(finding)))
    assert decision.rule == "privilege-change"
    assert [(a.action, a.mode) for a in decision.actions] == [("investigate", "enforce"), ("notify", "enforce")]


def test_policy_check_names_detection_mistakes(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("version = 1\n" + RULE + "[detection.quota_jump]\nmin_jump_share = 2\n", encoding="utf-8")
    out = subprocess.run([sys.executable, "-m", "shared.cli", "policy", "check", str(bad)], env=base_env(),
                         cwd=REPO_ROOT, capture_output=True, text=True, check=False, timeout=60)
    assert out.returncode == 1
    assert "detection.quota_jump.min_jump_share: 2.0 is out of range; allowed 0 to 1" in out.stderr
