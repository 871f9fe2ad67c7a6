"""Normalising both sources into one alert model: tolerant where the contract is loose, strict
where a record would be useless."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.alerts import (
    AlertParseError,
    from_entity,
    material_changes,
    parse_time,
    to_entity,
)
from shared.sources.graph import parse as from_graph
from shared.sources.partner_center import parse as from_partner_center

NEW_MODEL: dict[str, Any] = {
    "eventTime": "2021-12-08T00:25:45.69",
    "eventId": "sub-1_vm-gpu-01",
    "partnerTenantId": "11111111-1111-4111-8111-111111111111",
    "customerTenantId": "AAAAAAAA-0001-4000-8000-000000000001",
    "customerFriendlyName": "Fabrikam",
    "subscriptionId": "bbbbbbbb-0001-4000-8000-000000000001",
    "hitCount": "10",
    "eventStatus": "Active",
    "resolvedReason": "None",
    "resolvedOn": "9999-12-31T23:59:59.9970000",
    "resolvedBy": "",
    "firstObserved": "2021-12-07T10:00:00",
    "lastObserved": "2021-12-08T00:00:00.1234567",
    "eventType": "NetworkConnectionsToCryptoMiningPools",
    "severity": "high",
    "confidenceLevel": "Medium",
    "affectedResources": [{"azureResourceId": "/subscriptions/x/vm1", "type": "Microsoft.Compute/virtualMachines"}],
    "additionalDetails": {"miningPool_IP": '["1.2.3.4","5.6.7.8"]', "connectionCount": "10"},
    "IsTest": "false",
    "activityLogs": json.dumps([{"statusFrom": "Active", "statusTo": "Investigating", "updatedBy": "a@b.c",
                                 "dateTime": "2021-12-08T01:00:00"}]),
}


def test_partner_center_new_model_is_normalised() -> None:
    a = from_partner_center(NEW_MODEL)
    assert a.key == "partner_center:sub-1_vm-gpu-01"
    assert a.customer_tenant_id == "aaaaaaaa-0001-4000-8000-000000000001"
    assert (a.status, a.severity, a.confidence) == ("active", "high", "medium")
    assert a.hit_count == 10
    assert a.category == "crypto_mining"
    assert a.detected_at == datetime(2021, 12, 8, 0, 25, 45, 690000, tzinfo=UTC)
    assert a.last_observed_at is not None and a.last_observed_at.microsecond == 123456
    assert a.resolved_at is None and a.resolved_reason == ""
    assert a.affected_resources[0].resource_id == "/subscriptions/x/vm1"
    assert a.additional_details["miningPool_IP"] == ["1.2.3.4", "5.6.7.8"]
    assert a.is_test is False
    assert a.activity_logs[0].status_to == "Investigating"


def test_keys_are_matched_case_insensitively_and_activity_logs_may_be_an_array() -> None:
    record = {k.upper(): v for k, v in NEW_MODEL.items()}
    record["ACTIVITYLOGS"] = json.loads(NEW_MODEL["activityLogs"])
    record["ISTEST"] = "true"
    a = from_partner_center(record)
    assert a.id == "sub-1_vm-gpu-01" and a.is_test and a.activity_logs[0].updated_by == "a@b.c"


def test_legacy_event_without_new_model_fields() -> None:
    legacy = {k: v for k, v in NEW_MODEL.items() if k not in (
        "eventType", "severity", "confidenceLevel", "affectedResources", "additionalDetails", "IsTest", "activityLogs")}
    legacy["entityUrl"] = "/subscriptions/x/vm9"
    a = from_partner_center(legacy)
    assert a.type == "LegacyFraudEvent" and a.category == "crypto_mining"
    assert a.severity == "unknown" and a.affected_resources[0].resource_id == "/subscriptions/x/vm9"


def test_unknown_event_type_is_kept_as_is() -> None:
    a = from_partner_center({**NEW_MODEL, "eventType": "QuantumTeleportAnomaly"})
    assert a.type == "QuantumTeleportAnomaly" and a.category == "anomalous_compute"
    b = from_partner_center({**NEW_MODEL, "eventType": "SomethingNew"})
    assert b.type == "SomethingNew" and b.category == "other"


@pytest.mark.parametrize("missing", ["eventId", "customerTenantId"])
def test_record_without_id_or_customer_is_rejected_clearly(missing: str) -> None:
    record = {k: v for k, v in NEW_MODEL.items() if k != missing}
    with pytest.raises(AlertParseError, match="no"):
        from_partner_center(record)


def test_unparseable_hit_count_and_dates_do_not_reject_the_alert() -> None:
    a = from_partner_center({**NEW_MODEL, "hitCount": "lots", "eventTime": "yesterday"})
    assert a.hit_count is None and a.detected_at is None


def test_graph_alert_is_normalised() -> None:
    a = from_graph({
        "id": "9a1b", "alertType": "networkConnectionsToCryptoMiningPools", "status": "investigating",
        "severity": "high", "confidenceLevel": "high", "isTest": True, "customerTenantId": "C1",
        "subscriptionId": "S1", "detectedDateTime": "2024-05-20T10:00:00Z",
        "affectedResources": [{"resourceId": "/subscriptions/S1/vm", "resourceType": "vm"}],
        "activityLogs": [{"statusFrom": "active", "statusTo": "investigating", "updatedBy": "x",
                          "updatedDateTime": "2024-05-20T11:00:00Z"}],
        "additionalDetails": {"connectionCount": "7"},
    })
    assert a.key == "graph:9a1b" and a.status == "investigating" and a.is_test
    assert a.hit_count == 7 and a.affected_resources[0].resource_type == "vm"


def test_material_changes() -> None:
    base = from_partner_center(NEW_MODEL)
    assert material_changes(None, base) == ["new alert"]
    assert material_changes(base, base) == []
    assert material_changes(base, from_partner_center({**NEW_MODEL, "hitCount": "15"})) == []
    assert material_changes(base, from_partner_center({**NEW_MODEL, "hitCount": "20"})) == ["hit count 10 -> 20"]
    resolved = from_partner_center({**NEW_MODEL, "eventStatus": "Resolved"})
    assert material_changes(base, resolved) == ["status active -> resolved"]
    more = from_partner_center({**NEW_MODEL, "affectedResources": [
        *NEW_MODEL["affectedResources"], {"azureResourceId": "/subscriptions/x/vm2", "type": "vm"}]})
    assert material_changes(base, more) == ["1 new affected resource(s)"]


def test_entity_round_trip_keeps_everything_including_a_large_raw_payload() -> None:
    big = {**NEW_MODEL, "description": "x" * 100_000}
    a = from_partner_center(big)
    entity = to_entity(a, version=3, changed_at=datetime.now(UTC))
    assert entity["PartitionKey"] == a.customer_tenant_id and entity["raw_chunks"] >= 4
    assert all(len(v) <= 32_000 for v in entity.values() if isinstance(v, str))
    b = from_entity(entity)
    assert b == a and b.raw == a.raw and b.fingerprint() == a.fingerprint()


@given(st.text(max_size=40))
def test_parse_time_never_raises(text: str) -> None:
    parse_time(text)


def test_entity_with_a_truncated_raw_payload_falls_back_to_its_columns() -> None:
    a = from_partner_center(NEW_MODEL)
    entity = to_entity(a, version=1, changed_at=datetime.now(UTC))
    entity["raw_0"] = entity["raw_0"][:50]
    b = from_entity(entity)
    assert (b.id, b.status, b.hit_count, b.affected_resources) == (a.id, a.status, a.hit_count, a.affected_resources)
    assert b.raw == {"truncated": True}
