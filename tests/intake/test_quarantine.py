"""Quarantined records are visible: `fraud-responder alerts quarantine` and the daily digest."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from typing import Any

from devhost.azurite import Azurite
from shared.intake.sync import AlertSync
from shared.names import ALERTS_TABLE
from shared.operations.digest import build_digest
from shared.settings import load_settings
from shared.storage.tables import TableStore
from tests.conftest import settings_env
from tests.intake.test_sync import CUSTOMERS, ListSource, record


class NoQueue:
    def send_json(self, queue: str, document: dict[str, Any]) -> None:
        """No job is expected: these records are not stored."""


def test_quarantined_records_are_listed_by_the_cli_and_the_digest(azurite: Azurite) -> None:
    env = settings_env(azurite)
    settings = load_settings(env)
    store = TableStore(settings)
    nameless = {"eventType": "x", "customerTenantId": CUSTOMERS[0], "note": "n" * 100_000, "marker": uuid.uuid4().hex}
    good = record(1, CUSTOMERS[0], eventStatus="Resolved")
    result = AlertSync(table=store.table_client(ALERTS_TABLE), queue=NoQueue(), respond_queue="unused").run(
        [ListSource([nameless, good])])
    assert (result.new, result.quarantined) == (1, 1)

    digest = build_digest(settings, store)
    [row] = digest.as_dict()["quarantined"]
    assert row["source"] == "partner_center" and "event id" in row["reason"]
    assert digest.needs_attention and "QUARANTINED RECORDS (1)" in digest.as_text()
    assert "alerts quarantine" in digest.as_text()

    cli_env = {**os.environ, **env, "FRAUD_RESPONDER_LOCAL_SETTINGS": "no-such-file.json"}
    listed = subprocess.run([sys.executable, "-m", "shared.cli", "alerts", "quarantine", "--json", "--raw"],
                            env=cli_env, capture_output=True, text=True, check=False, timeout=120)
    assert listed.returncode == 0, listed.stderr
    [item] = json.loads(listed.stdout)
    assert "event id" in item["reason"]
    assert item["raw"].startswith('{"customerTenantId"') and item["raw_cut"] is False
    assert json.loads(item["raw"])["marker"] == nameless["marker"]
    table = subprocess.run([sys.executable, "-m", "shared.cli", "alerts", "quarantine"], env=cli_env,
                           capture_output=True, text=True, check=False, timeout=120)
    assert table.returncode == 0 and "event id" in table.stdout and "n" * 1000 not in table.stdout
