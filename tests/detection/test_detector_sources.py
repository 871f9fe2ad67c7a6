"""The detectors as alert sources: a finding becomes a stored record and parses back into the one
Alert model under the detector's source; detectors are local only and never polled."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from shared import sources
from shared.alerts import AlertParseError
from shared.detection.detectors import load
from shared.settings import SettingsError, load_settings
from shared.sources import detectors as detector_source
from tests.conftest import REPO_ROOT
from tests.detection.readings import (
    INTRUDER,
    NOW,
    OWNER,
    SUB,
    ordinary_history,
    role_assignment,
    subscription_input,
    vm_create,
)
from tests.detection.test_compute_burst import burst

STORAGE = {"AzureWebJobsStorage": "UseDevelopmentStorage=true"}
NO_FILE = REPO_ROOT / "nope.json"


def test_a_compute_burst_finding_round_trips_into_an_alert_of_its_source() -> None:
    [finding] = load("compute_burst").detect(
        subscription_input(burst(NOW - timedelta(minutes=40)), baseline=ordinary_history()), {}, None).findings
    record = json.loads(json.dumps(detector_source.to_record(finding)))  # stored as JSON
    alert = sources.load("compute_burst").parse(record)
    assert (alert.source, alert.id) == ("compute_burst", finding.alert_id)
    assert alert.key == f"compute_burst:{finding.alert_id}"
    assert (alert.type, alert.category, alert.status) == ("ComputeBurst", "compute_burst", "active")
    assert (alert.severity, alert.confidence, alert.hit_count) == ("high", "high", 12)
    assert alert.subscription_id == SUB and alert.customer_tenant_id == finding.customer_tenant_id
    assert [r.resource_id for r in alert.affected_resources] == [r.resource_id for r in finding.resources]
    assert alert.additional_details["signals"] == finding.evidence["signals"]
    assert alert.additional_details["episode"] == finding.episode
    assert (alert.display_name, alert.description) == (finding.title, finding.description)
    assert (alert.first_observed_at, alert.last_observed_at) == (finding.first_observed_at, finding.last_observed_at)
    assert alert.detected_at == finding.first_observed_at and not alert.is_test


def test_privilege_change_and_micro_fraud_findings_parse_too() -> None:
    events = [vm_create("x", "Standard_D2s_v5", "westeurope", NOW - timedelta(minutes=9), INTRUDER),
              role_assignment(INTRUDER[1], OWNER, NOW - timedelta(minutes=5), INTRUDER)]
    [finding] = load("privilege_change").detect(subscription_input(events, baseline=ordinary_history()),
                                                {}, None).findings
    alert = sources.load("privilege_change").parse(detector_source.to_record(finding))
    assert (alert.source, alert.category, alert.affected_resources[0].resource_type) == (
        "privilege_change", "privilege_change", "Microsoft.Authorization/roleAssignments")
    record = {**detector_source.to_record(finding), "detector": "micro_fraud", "type": "MicroFraud",
              "customerTenantId": "", "subscriptionId": "", "subjectKey": "reseller-5512345"}
    reseller = sources.load("micro_fraud").parse(record)
    assert (reseller.customer_tenant_id, reseller.category) == ("reseller-5512345", "micro_fraud")


@pytest.mark.parametrize("record", [[], {"detector": "compute_burst"}, {"id": "a:b"},
                                    {"id": "a:b", "detector": "nope", "customerTenantId": "t"},
                                    {"id": "a:b", "detector": "quota_jump"}])
def test_a_useless_record_is_a_parse_error(record: object) -> None:
    with pytest.raises(AlertParseError):
        detector_source.parse(record)  # type: ignore[arg-type]


def test_the_four_detectors_are_registered_local_only_and_not_polled() -> None:
    for name in ("compute_burst", "privilege_change", "quota_jump", "micro_fraud"):
        entry = sources.get(name)
        assert (entry.writes_status, entry.polled) == (False, False)
        assert sources.status_writer(name) is None
        assert [c.name for c in entry.categories] == [name] and sources.headline(name)
        assert list(sources.load(name).fetcher(None, None, {}).pages(None)) == []  # type: ignore[arg-type]
    assert sources.polled_names() == ("partner_center", "graph")
    assert {"compute_burst", "micro_fraud"} <= set(sources.names())
    assert sources.categorise("quota_jump", "QuotaJump") == "quota_jump"
    assert sources.categorise("quota_jump", "SomethingNew") == "other"


def test_alert_sources_accepts_only_polled_sources() -> None:
    assert load_settings({**STORAGE}, local_settings=NO_FILE).alert_sources == ("partner_center",)
    with pytest.raises(SettingsError, match="ALERT_SOURCES"):
        load_settings({**STORAGE, "ALERT_SOURCES": "partner_center,compute_burst"}, local_settings=NO_FILE)
