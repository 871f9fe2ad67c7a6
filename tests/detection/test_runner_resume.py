"""The runner's guarantees, against the sandbox and Azurite: a run killed between "findings stored"
and "state written", or between subscriptions, resumes and counts nothing twice; entries read again
in the overlap window are dropped; one failing subscription or detector never stops the others; a
failed watch-list refresh keeps the cache."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from devhost.azurite import Azurite
from sandbox import ids
from sandbox.core import Sandbox
from shared.detection import detectors as registry
from shared.detection.base import SUBSCRIPTION_SCOPE, Outcome, PartnerInput, SubscriptionInput, Target
from shared.detection.jobs import DetectionRuntime, run_once
from shared.detection.watchlist import WatchList
from tests.detection.test_detect_run import detection_settings, detector_alerts


class Killed(BaseException):
    """Raised by the stage hook: the run stops dead there (nothing in the runner catches it)."""


def runtime_for(azurite: Azurite, sandbox: Sandbox, **overrides: str) -> DetectionRuntime:
    settings, _ = detection_settings(azurite, sandbox, **overrides)
    return DetectionRuntime.from_settings(settings)


def woodgrove(runtime: DetectionRuntime) -> dict[str, tuple[int, int]]:
    """source -> (hit count, version) of the Woodgrove alerts."""
    return {str(r["source"]): (int(r["hit_count"]), int(r["version"])) for r in detector_alerts(runtime)}


def kill_at(stage_name: str, subject: str | None = None) -> Any:
    def stage(name: str, at: str) -> None:
        if name == stage_name and (subject is None or at == subject):
            raise Killed(f"killed at {name} of {at}")
    return stage


def test_killed_after_storing_findings_before_state_resumes_without_double_counting(
        azurite: Azurite, fresh_sandbox: Sandbox) -> None:
    runtime = runtime_for(azurite, fresh_sandbox)
    targets = runtime.watchlist().targets()

    with pytest.raises(Killed):
        runtime.runner(stage=kill_at("findings_stored", ids.SUB_WOODGROVE_PROD)).run_many(targets, concurrency=2)
    stored = woodgrove(runtime)
    assert stored == {"compute_burst": (12, 1), "privilege_change": (1, 1)}

    resumed = runtime.runner().run_many(targets, concurrency=2)

    assert not resumed.failed, resumed.as_dict()
    # the same entries judged again against the same old state: the same episodes, the alerts unchanged
    assert resumed.detectors["compute_burst"].findings == 1
    assert resumed.detectors["compute_burst"].new == resumed.detectors["compute_burst"].updated == 0
    assert woodgrove(runtime) == stored
    # and now the state moved on: nothing is found again
    assert runtime.runner().run_many(targets).detectors["compute_burst"].findings == 0
    assert woodgrove(runtime) == stored


def test_killed_between_subscriptions_resumes_the_rest(azurite: Azurite, fresh_sandbox: Sandbox) -> None:
    runtime = runtime_for(azurite, fresh_sandbox)
    targets = sorted(runtime.watchlist().targets(), key=lambda t: t.subscription_id != ids.SUB_WOODGROVE_PROD)
    assert targets[0].subscription_id == ids.SUB_WOODGROVE_PROD

    with pytest.raises(Killed):  # Woodgrove is committed, then the run dies
        runtime.runner(stage=kill_at("state_committed")).run_many(targets, concurrency=1, partner=False)
    first = woodgrove(runtime)

    resumed = runtime.runner().run_many(targets, concurrency=1)

    assert not resumed.failed
    assert resumed.detectors["compute_burst"].findings == 0  # Woodgrove was done; the others find nothing
    assert resumed.detectors["compute_burst"].subscriptions == len(targets)
    assert woodgrove(runtime) == first == {"compute_burst": (12, 1), "privilege_change": (1, 1)}


def test_entries_read_again_in_the_overlap_are_not_counted_twice(azurite: Azurite, fresh_sandbox: Sandbox) -> None:
    runtime = runtime_for(azurite, fresh_sandbox, DETECT_OVERLAP_MINUTES="60")
    assert not run_once(runtime).failed
    # two more GPU VMs by the intruder, logged late: their time is before the checkpoint, inside the overlap
    arm = fresh_sandbox.services["arm"]
    late = (datetime.now(UTC) - timedelta(minutes=3)).isoformat()
    arm.add_burst({"subscriptionId": ids.SUB_WOODGROVE_PROD, "principalId": ids.WOODGROVE_INTRUDER_ID,  # type: ignore[attr-defined]
                   "principalName": ids.WOODGROVE_INTRUDER_UPN, "count": 2, "regions": ["eastus2"],
                   "vmSize": "Standard_NC24ads_A100_v4", "at": late, "namePrefix": "vm-late", "key": "late"})

    run = run_once(runtime)

    assert not run.failed
    # the episode grew by exactly the two late VMs (the twelve read again were dropped)
    assert woodgrove(runtime)["compute_burst"][0] == 14
    assert run.detectors["compute_burst"].updated == 1 and run.detectors["compute_burst"].new == 0
    third = run_once(runtime)
    assert third.detectors["compute_burst"].findings == 0 and woodgrove(runtime)["compute_burst"][0] == 14


class Broken:
    name = "broken"
    scope = SUBSCRIPTION_SCOPE

    def detect(self, data: SubscriptionInput | PartnerInput, state: Mapping[str, Any], config: Any) -> Outcome:
        assert config is None  # a detector without a [detection] section gets None
        raise RuntimeError("a bug in a rule")


def test_a_failing_subscription_or_detector_never_stops_the_others(azurite: Azurite,
                                                                   fresh_sandbox: Sandbox) -> None:
    runtime = runtime_for(azurite, fresh_sandbox)
    targets = runtime.watchlist().targets()
    stranger = Target(customer_tenant_id="aaaaaaaa-9999-4000-8000-000000000999",
                      subscription_id="bbbbbbbb-9999-4000-8000-000000000999")
    runner = runtime.runner(detectors=[Broken(), registry.load("compute_burst"), registry.load("privilege_change")])

    run = runner.run_many([stranger, *targets], concurrency=2)

    assert set(run.failed) == {stranger.subscription_id}  # named, with the reason
    assert all("a bug in a rule" in e for e in run.detectors["broken"].errors)
    assert not run.detectors["compute_burst"].errors
    assert run.detectors["compute_burst"].subscriptions == len(targets)
    assert set(woodgrove(runtime)) == {"compute_burst", "privilege_change"}
    assert not run.ok


def test_a_failed_watch_list_refresh_keeps_the_cache(azurite: Azurite, fresh_sandbox: Sandbox) -> None:
    runtime = runtime_for(azurite, fresh_sandbox)
    cached = runtime.watchlist().targets()
    assert ids.SUB_WOODGROVE_PROD in {t.subscription_id for t in cached}

    def unreachable() -> Any:
        raise ConnectionError("Partner Center is down")

    watch = WatchList(runtime.store, unreachable, refresh=timedelta(minutes=60))
    assert watch.targets() == cached  # not due: the cache, no call
    assert sorted(watch.targets(force=True), key=str) == sorted(cached, key=str)  # due and failing: the cache
    assert "Partner Center is down" in watch.status().error
    empty = runtime_for(azurite, fresh_sandbox)
    with pytest.raises(ConnectionError):  # nothing cached: the failure is raised
        WatchList(empty.store, unreachable, refresh=timedelta(minutes=60)).targets()
