"""`fraud-responder policy check|explain` run as real processes; explain reads alerts synced into Azurite."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from devhost.azurite import Azurite
from shared.intake.sync import AlertSync
from shared.names import ALERTS_TABLE, RESPOND_QUEUE
from shared.settings import load_settings
from shared.storage.queues import QueueSender
from shared.storage.tables import TableStore
from tests.conftest import settings_env
from tests.intake.test_sync import ListSource, record

REPO_ROOT = Path(__file__).resolve().parents[2]
CUSTOMER = "aaaaaaaa-0000-4000-8000-000000000009"
MINING_ID = record(1, CUSTOMER)["eventId"]
TEST_ID = record(2, CUSTOMER)["eventId"]


def base_env(**overrides: str) -> dict[str, str]:
    """The caller's environment without any setting that could leak in, plus ``overrides``."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("POLICY_PATH", "AzureWebJobsStorage", "ALLOW_AUTOMATIC_CANCELLATION")}
    env["FRAUD_RESPONDER_LOCAL_SETTINGS"] = "no-such-file.json"
    env.update(overrides)
    return env


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "shared.cli", "policy", *args], env=env, cwd=REPO_ROOT,
                          capture_output=True, text=True, check=False, timeout=60)


BAD_POLICY = """version = 1
[[rules]]
name = "crypto-high"
match = { category = "crypto_mining", min_severity = "severe" }
actions = [{ action = "stop_vms", mode = "enforce" }]
"""


# --- check ----------------------------------------------------------------------------------------


def test_check_passes_the_shipped_policy_without_any_other_setting() -> None:
    out = cli(base_env(), "check")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "policy/default.toml: 6 rules, OK"


def test_check_prints_each_error_on_a_line_and_exits_1(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(BAD_POLICY, encoding="utf-8")
    out = cli(base_env(), "check", str(bad))
    assert out.returncode == 1 and out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 2
    assert 'rule "crypto-high": min_severity must be one of informational, low, medium, high' in lines[0]
    assert 'rule "crypto-high": unknown action "stop_vms"; valid actions: notify, investigate' in lines[1]


def test_check_reads_policy_path_and_reports_syntax_errors_with_the_line(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text('version = 1\n[[rules]\nname = "x"\n', encoding="utf-8")
    out = cli(base_env(POLICY_PATH=str(broken)), "check")
    assert out.returncode == 1
    assert "TOML syntax error" in out.stderr and "line 2" in out.stderr


def test_check_shows_warnings_but_passes(tmp_path: Path) -> None:
    shadowed = tmp_path / "shadowed.toml"
    shadowed.write_text('[[rules]]\nname = "all"\nactions = [{ action = "notify", mode = "enforce" }]\n'
                        '[[rules]]\nname = "crypto"\nmatch = { category = "crypto_mining" }\n'
                        'actions = [{ action = "investigate", mode = "enforce" }]\n', encoding="utf-8")
    out = cli(base_env(), "check", str(shadowed))
    assert out.returncode == 0, out.stderr
    assert "2 rules, OK" in out.stdout and 'warning: rule "crypto" can never match' in out.stdout


# --- explain --------------------------------------------------------------------------------------


@pytest.fixture
def explain_env(azurite: Azurite) -> dict[str, str]:
    env = settings_env(azurite)
    settings = load_settings(env, local_settings=REPO_ROOT / "does-not-exist.json")
    store = TableStore(settings)
    sync = AlertSync(table=store.table_client(ALERTS_TABLE), queue=QueueSender(settings), respond_queue=RESPOND_QUEUE)
    sync.run([ListSource([record(1, CUSTOMER), record(2, CUSTOMER, isTest="true")])])
    return base_env(**env)


def test_explain_shows_the_rule_the_actions_and_why(explain_env: dict[str, str]) -> None:
    out = cli(explain_env, "explain", MINING_ID)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert f"alert:  partner_center:{MINING_ID}" in text
    assert 'rule:   "crypto-mining-high"' in text
    assert any(line.split()[:2] == ["stop_resources", "approve"] and "operation=deallocate" in line
               for line in text.splitlines())
    assert "why:" in text and "yes  min_severity: high >= high" in text


def test_explain_json_for_a_test_alert_plans_one_test_notification(explain_env: dict[str, str]) -> None:
    out = cli(explain_env, "explain", f"partner_center:{TEST_ID}", "--json")
    assert out.returncode == 0, out.stderr
    decision = json.loads(out.stdout)
    assert [(a["action"], a["mode"], a["test"]) for a in decision["actions"]] == [("notify", "enforce", True)]
    assert {d["action"] for d in decision["dropped"]} >= {"stop_resources", "suspend_subscription"}


def test_explain_with_a_draft_policy_tags_and_the_cancellation_setting(explain_env: dict[str, str],
                                                                       tmp_path: Path) -> None:
    draft = tmp_path / "draft.toml"
    draft.write_text('[[rules]]\nname = "lab"\nmatch = { customer_tags = ["lab"] }\n'
                     'actions = [{ action = "cancel_azure_subscription", mode = "enforce" }]\n'
                     '[[rules]]\nname = "rest"\nactions = [{ action = "notify", mode = "enforce" }]\n',
                     encoding="utf-8")

    def explain(env: dict[str, str], *extra: str) -> dict[str, Any]:
        out = cli(env, "explain", MINING_ID, "--policy", str(draft), "--json", *extra)
        assert out.returncode == 0, out.stderr
        result: dict[str, Any] = json.loads(out.stdout)
        return result

    assert explain(explain_env)["rule"] == "rest"
    held = explain(explain_env, "--tag", "lab")
    assert held["rule"] == "lab" and held["actions"] == [{
        "action": "cancel_azure_subscription", "mode": "approve", "requested_mode": "enforce", "params": {},
        "test": False, "reason": held["actions"][0]["reason"],
    }]
    assert "ALLOW_AUTOMATIC_CANCELLATION" in held["actions"][0]["reason"]
    allowed = explain({**explain_env, "ALLOW_AUTOMATIC_CANCELLATION": "true"}, "--tag", "lab")
    assert allowed["actions"][0]["mode"] == "enforce"


def test_explain_fails_cleanly_on_an_unknown_alert_or_a_bad_policy(explain_env: dict[str, str],
                                                                  tmp_path: Path) -> None:
    missing = cli(explain_env, "explain", "no-such-alert")
    assert missing.returncode == 1 and "fraud-responder alerts list" in missing.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text(BAD_POLICY, encoding="utf-8")
    invalid = cli(explain_env, "explain", MINING_ID, "--policy", str(bad))
    assert invalid.returncode == 1 and 'unknown action "stop_vms"' in invalid.stderr


def test_policy_actions_lists_the_catalogue_in_run_order_without_settings() -> None:
    listed = cli(base_env(), "actions", "--json")
    assert listed.returncode == 0, listed.stderr
    actions = json.loads(listed.stdout)
    names = [a["action"] for a in actions]
    assert names[0] == "update_status" and names[-1] == "notify" and len(names) == 8
    cancel = next(a for a in actions if a["action"] == "cancel_azure_subscription")
    assert "destructive" in cancel["kind"] and cancel["params"] == {}
    stop = next(a for a in actions if a["action"] == "stop_resources")
    assert stop["params"]["operation"]["choices"] == ["deallocate", "power_off"]

    table = cli(base_env(), "actions")
    assert table.returncode == 0 and "stop_resources" in table.stdout and "operation=deallocate" in table.stdout
