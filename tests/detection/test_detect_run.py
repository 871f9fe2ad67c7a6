"""Detection end to end on the default scenario: the real reader against the sandbox, the real
detectors, the runner, the sync into Azurite, the respond queue, the responder and approvals.

Done means (issue 13): `detect --once` raises the Woodgrove alerts (compute burst and privilege
change) and nothing for the other customers; a second run raises and updates nothing; the default
policy answers the burst like crypto-mining (investigate and notify now, stop the twelve VMs on
approval); approving deallocates them; resolving a detector alert writes nothing to Microsoft.
"""

from __future__ import annotations

from typing import Any

from devhost.azurite import Azurite
from sandbox import ids
from sandbox.core import Sandbox
from shared.alerts import row_key
from shared.detection.jobs import DetectionRuntime, run_once
from shared.names import ALERTS_TABLE
from shared.response.actions.update_status import resolve_alert
from shared.response.ledger import AWAITING_APPROVAL, SUCCEEDED
from shared.settings import Settings, load_settings
from tests.conftest import REPO_ROOT, settings_env
from tests.response.respond_support import Stage, by_action, respond_one, take_job, writes

DETECTORS = ("compute_burst", "privilege_change", "quota_jump", "micro_fraud")


def detection_settings(azurite: Azurite, sandbox: Sandbox, **overrides: str) -> tuple[Settings, dict[str, str]]:
    env = settings_env(azurite, **sandbox.app_settings(), **overrides)
    return load_settings(env, local_settings=REPO_ROOT / "does-not-exist.json"), env


def detector_alerts(runtime: DetectionRuntime) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for page in runtime.store.query(ALERTS_TABLE, "kind eq 'alert'"):
        rows.extend(e for e in page.entities if e.get("source") in DETECTORS)
    return rows


def woodgrove_key(runtime: DetectionRuntime, source: str) -> str:
    [row] = [r for r in detector_alerts(runtime) if r["source"] == source]
    return f"{source}:{row['alert_id']}"


def test_detect_once_raises_woodgrove_only_and_a_second_run_changes_nothing(azurite: Azurite,
                                                                            fresh_sandbox: Sandbox) -> None:
    settings, _ = detection_settings(azurite, fresh_sandbox)
    runtime = DetectionRuntime.from_settings(settings)

    run = run_once(runtime)

    assert not run.failed, run.as_dict()
    rows = detector_alerts(runtime)
    assert {(r["source"], r["customer_tenant_id"], r["subscription_id"]) for r in rows} == {
        ("compute_burst", ids.CUSTOMER_WOODGROVE, ids.SUB_WOODGROVE_PROD),
        ("privilege_change", ids.CUSTOMER_WOODGROVE, ids.SUB_WOODGROVE_PROD)}
    burst = next(r for r in rows if r["source"] == "compute_burst")
    assert (burst["severity"], burst["confidence"], burst["category"]) == ("high", "high", "compute_burst")
    assert burst["hit_count"] == ids.WOODGROVE_BURST_VMS and burst["respond_state"] == "pending"
    assert ids.WOODGROVE_INTRUDER_UPN in burst["description"]
    assert run.detectors["compute_burst"].new == run.detectors["privilege_change"].new == 1
    assert run.detectors["compute_burst"].subscriptions == 4  # every watched subscription was judged

    again = run_once(runtime)

    assert not again.failed, again.as_dict()
    assert sum(again.detectors[d].new + again.detectors[d].updated + again.detectors[d].findings
               for d in DETECTORS if d in again.detectors) == 0, again.as_dict()
    assert [(r["RowKey"], r["version"]) for r in detector_alerts(runtime)] == [
        (r["RowKey"], r["version"]) for r in rows]


def test_the_default_policy_answers_the_burst_like_crypto_mining(azurite: Azurite, fresh_sandbox: Sandbox) -> None:
    settings, env = detection_settings(azurite, fresh_sandbox)
    runtime = DetectionRuntime.from_settings(settings)
    run_once(runtime)
    from shared.intake.jobs import IntakeRuntime

    st = Stage(settings, IntakeRuntime.from_settings(settings), env)
    key = woodgrove_key(runtime, "compute_burst")
    job, body = take_job(st, key)
    responder = st.responder()
    mark = len(fresh_sandbox.requests())

    result = respond_one(body, responder=responder)

    assert result is not None and result.rule == "compute-burst-high"
    rows = responder.list_actions(alert=key)
    assert {r.action for r in rows if r.state == SUCCEEDED} == {"update_status", "investigate", "notify"}
    pending = [r for r in rows if r.state == AWAITING_APPROVAL]
    stops = by_action(pending, "stop_resources")
    assert len(stops) == ids.WOODGROVE_BURST_VMS
    assert all(f"/subscriptions/{ids.SUB_WOODGROVE_PROD}/" in r.target.id.lower() for r in stops)
    # the status is ours: recorded on the row, nothing written to Microsoft but the e-mail
    stored = st.store.get(ALERTS_TABLE, ids.CUSTOMER_WOODGROVE, row_key(key))
    assert stored is not None and stored["status"] == "investigating"
    assert all(r.service == "graph" and r.path.endswith("/sendMail") for r in writes(fresh_sandbox, mark))
    assert st.job_state(job) == "handled"

    arm = fresh_sandbox.services["arm"]
    for row in stops:
        assert responder.approve(row.action_id, "alice").state == SUCCEEDED
    assert {arm.power_state(r.target.id) for r in stops} == {"deallocated"}  # type: ignore[attr-defined]

    # the episode's alert keeps the operator's verdict: a later run does not reopen it
    assert not run_once(runtime).failed
    stored = st.store.get(ALERTS_TABLE, ids.CUSTOMER_WOODGROVE, row_key(key))
    assert stored is not None and stored["status"] == "investigating"


def test_resolving_a_detector_alert_as_legitimate_writes_nothing_to_microsoft(azurite: Azurite,
                                                                              fresh_sandbox: Sandbox) -> None:
    settings, _ = detection_settings(azurite, fresh_sandbox)
    runtime = DetectionRuntime.from_settings(settings)
    run_once(runtime)
    key = woodgrove_key(runtime, "privilege_change")
    mark = len(fresh_sandbox.requests())

    outcome = resolve_alert(settings, runtime.store, key, "legitimate", "alice")

    assert "recorded locally" in outcome.summary, outcome
    assert writes(fresh_sandbox, mark) == []
    stored = runtime.store.get(ALERTS_TABLE, ids.CUSTOMER_WOODGROVE, row_key(key))
    assert stored is not None and (stored["status"], stored["resolved_reason"]) == ("resolved", "legitimate")
    # the next run keeps the verdict (no new version, no new respond job)
    again = run_once(runtime)
    assert again.detectors["privilege_change"].new == 0
    stored = runtime.store.get(ALERTS_TABLE, ids.CUSTOMER_WOODGROVE, row_key(key))
    assert stored is not None and stored["status"] == "resolved"
