"""Quota hygiene: the core quotas far above anything used, per subscription (a pure rule)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from devhost.azurite import Azurite
from sandbox import ids
from sandbox.core import Sandbox
from shared.detection.base import QuotaReading
from shared.operations.quota import recommend, suggested_limit

T0 = datetime(2026, 11, 1, tzinfo=UTC)
SUB_A = "11111111-0000-4000-8000-000000000001"
SUB_B = "11111111-0000-4000-8000-000000000002"


def reading(name: str, current: int, limit: int, *, location: str = "eastus", hours: int = 0) -> QuotaReading:
    return QuotaReading(location=location, name=name, current=current, limit=limit, read_at=T0 + timedelta(hours=hours),
                        display_name=f"{name} vCPUs")


def test_an_unused_gpu_family_quota_is_recommended_first_with_a_limit_that_fits_its_use() -> None:
    found = recommend({SUB_A: [
        reading("cores", 8, 100),
        reading("standardDSv5Family", 8, 100),
        reading("standardNCADSA100v4Family", 0, 96),
        reading("availabilitySets", 0, 2500),  # not a core quota
        reading("virtualMachines", 2, 25000),
    ]})
    assert [(r.name, r.gpu) for r in found] == [("standardNCADSA100v4Family", True), ("cores", False),
                                               ("standardDSv5Family", False)]
    gpu = found[0]
    assert gpu.limit == 96 and gpu.peak_used == 0 and gpu.suggested_limit == 0 and gpu.unused == 96
    assert "GPU family" in gpu.text() and "lower it to 0" in gpu.text() and SUB_A in gpu.text()
    assert found[1].suggested_limit == 16


def test_quota_in_use_or_with_little_headroom_is_left_alone() -> None:
    assert recommend({SUB_A: [
        reading("standardNCADSA100v4Family", 48, 96),  # half used
        reading("standardDSv5Family", 0, 10),  # only 10 unused
        reading("lowPriorityCores", 30, 100),  # 30% used
        reading("standardBSFamily", 0, 0),  # no quota
    ]}) == []


def test_the_peak_over_several_readings_counts_and_subscriptions_and_regions_stay_apart() -> None:
    found = recommend({
        SUB_A: [reading("standardNCSv3Family", 0, 48, hours=0), reading("standardNCSv3Family", 20, 48, hours=6),
                reading("standardNCSv3Family", 0, 48, hours=12)],
        SUB_B: [reading("standardNCSv3Family", 0, 48, location="westeurope"),
                reading("standardNCSv3Family", 2, 64, location="eastus")],
    })
    assert [(r.subscription_id, r.location, r.limit, r.peak_used) for r in found] == [
        (SUB_B, "eastus", 64, 2), (SUB_B, "westeurope", 48, 0)]  # SUB_A peaked at 20 of 48: in use
    assert found[0].readings == 1 and found[0].suggested_limit == 4
    assert recommend({}) == []


def test_suggested_limits_leave_twice_the_peak_in_steps_of_four() -> None:
    assert [suggested_limit(n) for n in (0, 1, 2, 3, 8, 9)] == [0, 4, 4, 8, 16, 20]


def test_the_digest_lists_the_recommendations_or_says_quota_was_not_read() -> None:
    from shared.operations.digest import Digest, _quota

    shown = Digest(generated_at=T0, since=T0 - timedelta(hours=24),
                   quota=_quota({SUB_A: [reading("standardNCADSA100v4Family", 0, 96)]}))
    text = shown.as_text()
    assert "QUOTA HYGIENE: CORE QUOTA FAR ABOVE USE (1, read only)" in text
    assert f"subscription {SUB_A}, eastus: GPU family standardNCADSA100v4Family vCPUs quota is 96 cores" in text
    assert shown.as_dict()["quota_hygiene"]["recommendations"][0]["suggested_limit"] == 0
    unread = Digest(generated_at=T0, since=T0)
    assert "compute quota was not read" in unread.as_text()
    assert unread.as_dict()["quota_hygiene"]["read"] is False


def test_the_digest_reads_quota_of_unresolved_alerts_subscriptions_in_their_vms_regions(
        azurite: Azurite, fresh_sandbox: Sandbox) -> None:
    from shared.operations.digest import build_digest
    from tests.response.respond_support import stage

    st = stage(azurite, fresh_sandbox)
    digest = build_digest(st.settings, st.store, read_quota=True)
    quota = digest.as_dict()["quota_hygiene"]
    assert quota["read"]
    # other alerts of the scenario name VMs that cannot be read: named in the errors, the rest still read
    assert not any(ids.MINING_VM_1.lower() in e.lower() for e in quota["errors"])
    mining = [r for r in quota["recommendations"] if r["subscription_id"] == ids.SUB_FABRIKAM_PROD]
    assert mining and mining[0]["gpu"] and mining[0]["location"] == "eastus"
    assert mining[0]["recommendation"] in digest.as_text()
    assert build_digest(st.settings, st.store).as_dict()["quota_hygiene"]["read"] is False  # reads only when asked
