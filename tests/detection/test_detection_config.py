"""The [detection] table: defaults documented, every mistake named by its dotted name at once."""

from __future__ import annotations

import pytest

from shared.detection.config import DEFAULT, DetectionConfig, DetectionConfigError
from shared.detection.detectors import load, names
from shared.errors import FraudResponderError


def test_defaults_when_the_table_is_absent() -> None:
    config = DetectionConfig.from_mapping(None)
    assert config == DEFAULT == DetectionConfig.from_mapping({})
    assert config.general.lookback_days == 7 and config.general.episode_gap_minutes == 120
    section = config.section("compute_burst")
    assert section.min_count == 5 and section.episode_gap_minutes == 120 and section.memory_days == 30


def test_values_are_read_and_sections_inherit_general_settings_unless_they_set_their_own() -> None:
    config = DetectionConfig.from_mapping({
        "episode_gap_minutes": 60, "partner_tenant_id": "2F1C3A4E-5B6D-4E7F-8A9B-0C1D2E3F4A5B",
        "compute_burst": {"min_count": 8, "rate_factor": 4, "gpu_size_prefixes": ["Standard_NC"]},
        "privilege_change": {"episode_gap_minutes": 30},
    })
    burst = config.section("compute_burst")
    assert (burst.min_count, burst.rate_factor, burst.gpu_size_prefixes) == (8, 4.0, ("standard_nc",))
    assert burst.episode_gap_minutes == 60
    assert burst.partner_tenant_id == "2f1c3a4e-5b6d-4e7f-8a9b-0c1d2e3f4a5b"
    assert config.section("privilege_change").episode_gap_minutes == 30


def test_every_mistake_is_reported_by_its_dotted_name_in_one_error() -> None:
    with pytest.raises(DetectionConfigError) as caught:
        DetectionConfig.from_mapping({
            "lookback_days": 400,
            "episode_gap": 10,
            "compute_burst": {"min_count": "five", "rate_factor": True, "gpu_size_prefixes": "NC"},
            "quota_jump": {"min_jump_share": 1.5},
            "micro_fraud": 3,
            "privilege_change": {"roles": [""]},
        })
    errors = caught.value.errors
    assert isinstance(caught.value, FraudResponderError)
    assert [e.split(":")[0] for e in errors] == [
        "detection.lookback_days", "detection.episode_gap", "detection.compute_burst.min_count",
        "detection.compute_burst.rate_factor", "detection.compute_burst.gpu_size_prefixes",
        "detection.privilege_change.roles", "detection.quota_jump.min_jump_share", "detection.micro_fraud"]
    assert "out of range; allowed 1 to 90" in errors[0]
    assert "unknown setting" in errors[1] and "episode_gap_minutes" in errors[1]
    assert "expected a whole number" in errors[2]


def test_the_registry_lists_and_loads_every_detector() -> None:
    assert names() == ("compute_burst", "privilege_change", "quota_jump", "micro_fraud")
    scopes = {name: load(name).scope for name in names()}
    assert scopes == {"compute_burst": "subscription", "privilege_change": "subscription",
                      "quota_jump": "subscription", "micro_fraud": "partner"}
    assert all(load(name).name == name for name in names())
    with pytest.raises(KeyError, match="choose from"):
        load("nope")


def test_the_partner_tenant_comes_from_the_app_setting_unless_the_table_sets_it() -> None:
    tenant = "2F1C3A4E-5B6D-4E7F-8A9B-0C1D2E3F4A5B"
    filled = DEFAULT.with_partner_tenant(tenant)
    assert filled.section("compute_burst").partner_tenant_id == tenant.lower()
    assert filled.section("privilege_change").partner_tenant_id == tenant.lower()
    own = DetectionConfig.from_mapping({"partner_tenant_id": "aaaaaaaa-0000-4000-8000-000000000000"})
    assert own.with_partner_tenant(tenant) == own
