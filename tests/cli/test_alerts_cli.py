"""`fraud-responder alerts list|show` against alerts synced into Azurite, run as a real process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime

import pytest

from devhost.azurite import Azurite
from shared.intake.sync import AlertSync
from shared.names import ALERTS_TABLE, RESPOND_QUEUE
from shared.settings import load_settings
from shared.storage.queues import QueueSender
from shared.storage.tables import TableStore
from tests.conftest import settings_env
from tests.intake.test_sync import ListSource, record

CUSTOMER = "aaaaaaaa-0000-4000-8000-000000000007"


@pytest.fixture
def cli_env(azurite: Azurite) -> dict[str, str]:
    env = settings_env(azurite)
    settings = load_settings(env)
    store = TableStore(settings)
    sync = AlertSync(table=store.table_client(ALERTS_TABLE), queue=QueueSender(settings), respond_queue=RESPOND_QUEUE)
    sync.run([ListSource([record(1, CUSTOMER), record(2, CUSTOMER, eventStatus="Investigating", isTest="true")])])
    return {**os.environ, **env, "FRAUD_RESPONDER_LOCAL_SETTINGS": "no-such-file.json"}


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "shared.cli", *args], env=env, capture_output=True, text=True,
                          check=False, timeout=60)


def test_alerts_list_as_json_is_the_documented_shape(cli_env: dict[str, str]) -> None:
    out = cli(cli_env, "alerts", "list", "--json")
    assert out.returncode == 0, out.stderr
    alerts = json.loads(out.stdout)
    assert len(alerts) == 2
    assert set(alerts[0]) >= {"id", "key", "customer_tenant_id", "subscription_id", "type", "severity", "status",
                              "affected_resources", "version", "is_test"}
    assert {a["status"] for a in alerts} == {"active", "investigating"}


def test_alerts_list_filters_and_prints_a_table(cli_env: dict[str, str]) -> None:
    out = cli(cli_env, "alerts", "list", "--status", "investigating")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert lines[0].startswith("ID") and len(lines) == 2 and "(test)" in lines[1]
    since_future = cli(cli_env, "alerts", "list", "--since", datetime.now(UTC).replace(year=2099).isoformat())
    assert since_future.stdout.strip() == "no alerts match"


def test_alerts_show_and_unknown_id(cli_env: dict[str, str]) -> None:
    alert_id = record(1, CUSTOMER)["eventId"]
    out = cli(cli_env, "alerts", "show", alert_id, "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["affected_resources"][0]["id"].endswith("/vm1")
    missing = cli(cli_env, "alerts", "show", "nope")
    assert missing.returncode == 1 and "fraud-responder alerts list" in missing.stderr


def test_usage_errors_exit_2(cli_env: dict[str, str]) -> None:
    assert cli(cli_env, "alerts", "list", "--status", "bogus").returncode == 2
    assert cli(cli_env, "alerts", "list", "--since", "whenever").returncode == 2
