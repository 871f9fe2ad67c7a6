"""Detection end to end on the default scenario: the real reader (A) against the sandbox, the real
detectors (B), the runner, the sync into Azurite, the respond queue and the responder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from devhost.azurite import Azurite
from sandbox import ids
from sandbox.core import Sandbox
from shared.alerts import from_entity
from shared.detection.jobs import DetectionRuntime, run_once
from shared.names import ALERTS_TABLE
from shared.settings import Settings, load_settings
from tests.conftest import REPO_ROOT, settings_env


def detection_settings(azurite: Azurite, sandbox: Sandbox, **overrides: str) -> Settings:
    env = settings_env(azurite, **sandbox.app_settings(), **overrides)
    return load_settings(env, local_settings=REPO_ROOT / "does-not-exist.json")


def detector_alerts(runtime: DetectionRuntime) -> list[dict[str, object]]:
    rows = []
    for page in runtime.store.query(ALERTS_TABLE, "kind eq 'alert'"):
        rows.extend(e for e in page.entities if e.get("source") in
                    ("compute_burst", "privilege_change", "quota_jump", "micro_fraud"))
    return rows


def test_detect_once_raises_woodgrove_and_nothing_else(azurite: Azurite, fresh_sandbox: Sandbox) -> None:
    runtime = DetectionRuntime.from_settings(detection_settings(azurite, fresh_sandbox))
    run = run_once(runtime)
    print(json.dumps(run.as_dict(), indent=1, default=str))
    rows = detector_alerts(runtime)
    for r in rows:
        print(r["source"], r["customer_tenant_id"], r["subscription_id"], r["severity"], r["confidence"],
              r["display_name"])
    assert {(r["source"], r["subscription_id"]) for r in rows} == {
        ("compute_burst", ids.SUB_WOODGROVE_PROD), ("privilege_change", ids.SUB_WOODGROVE_PROD)}
