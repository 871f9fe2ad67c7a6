"""Independent detection: latency, calls per subscription, and a run over 1,000 subscriptions.

* Latency: the dev host runs the real timer (``detect_fanout``) and queue trigger
  (``detect_subscriptions``) against the sandbox; a burst is written at the sandbox
  (``POST /_sandbox/arm/bursts``) at a random moment of the interval, and the time until its alert
  is stored is measured, as a ratio of the detection interval. The interval is scaled down
  (``LATENCY_INTERVAL_S``) so the benchmark takes minutes; the latency is the wait for the next
  tick plus the run, so the ratio at the default 5 minutes is lower still (``ratio_at_default``).
* Calls: the sandbox's request log of a steady-state run (after the first), per subscription:
  ARM (activity log pages + one usages call per region of interest) and Partner Center (the
  audit log once per run; the watch list is cached). The minimum the design allows: one
  activity-log call per subscription, one usages call per region it uses, one audit-log call.
* Scale: 100 and 1,000 synthetic sandbox subscriptions, each run in a child process (its own
  peak RSS): the steady-state run's time against the bare calls it must make (the same reads
  with the same concurrency, plus one partition read and one row written per subscription;
  nothing judged), and peak RSS at 100 vs 1,000 (flat).
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from benchmarks.common import ROOT, default_scenario, local_stack, peak_rss_mb

LATENCY_INTERVAL_S: Final = 30
LATENCY_TRIALS: Final = 3
DEFAULT_INTERVAL_S: Final = 300


def run(sizes: tuple[int, int] = (100, 1000)) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    with local_stack(default_scenario()) as (azurite, sandbox):
        env = {"AzureWebJobsStorage": azurite.connection_string, "TABLE_NAME_PREFIX": "benchdetect",
               **sandbox.app_settings()}
        figures.update(_calls(env, sandbox))
        figures.update(_latency(env, sandbox))
    small, large = (_scale(n) for n in sizes)
    figures.update({
        f"run_{sizes[1]}_s": large["run_s"], f"bare_{sizes[1]}_s": large["bare_s"],
        f"time_ratio_{sizes[1]}": large["run_s"] / large["bare_s"],
        f"first_run_{sizes[1]}_s": large["first_run_s"],
        f"rss_{sizes[0]}_mb": small["peak_rss_mb"], f"rss_{sizes[1]}_mb": large["peak_rss_mb"],
        "rss_ratio": large["peak_rss_mb"] / small["peak_rss_mb"],
        f"false_positives_{sizes[1]}": large["alerts"],
    })
    return figures


# --- calls per subscription ----------------------------------------------------------------------------


def _calls(env: dict[str, str], sandbox: Any) -> dict[str, Any]:
    from shared.detection.jobs import DetectionRuntime, run_once
    from shared.settings import load_settings

    runtime = DetectionRuntime.from_settings(load_settings({**env, "TABLE_NAME_PREFIX": "benchcalls"},
                                                           local_settings=None))
    first = run_once(runtime)
    if first.failed:
        raise RuntimeError(f"detection failed: {first.failed}")
    mark = len(sandbox.requests())
    steady = run_once(runtime)
    calls = Counter(r.service for r in sandbox.requests()[mark:] if r.service in ("arm", "partner_center"))
    subs = steady.subjects - 1  # the partner scope is one subject
    usages = sum(1 for r in sandbox.requests()[mark:] if r.service == "arm" and r.path.lower().endswith("/usages"))
    return {"subscriptions": subs, "arm_calls_per_sub": calls["arm"] / subs,
            "arm_min_per_sub": (subs + usages) / subs,  # one activity-log call + one per region of interest
            "pc_calls_per_run": calls["partner_center"], "pc_min_per_run": 1,
            "false_positives_default": sum(t.new for t in first.detectors.values()) - 2}  # Woodgrove's two


# --- latency ----------------------------------------------------------------------------------------------


def _latency(env: dict[str, str], sandbox: Any) -> dict[str, Any]:
    from devhost.host import DevHost, schedule_settings
    from sandbox import ids
    from shared.names import ALERTS_TABLE
    from shared.settings import load_settings, reset_settings_cache
    from shared.storage.tables import TableStore

    host_env = {**env, **dict.fromkeys(schedule_settings(), "0 0 0 1 1 *"), "TABLE_NAME_PREFIX": "benchlatency",
                "DETECT_SCHEDULE": f"*/{LATENCY_INTERVAL_S} * * * * *",
                "FRAUD_RESPONDER_LOCAL_SETTINGS": str(ROOT / "no-local-settings.json")}
    reset_settings_cache()
    store = TableStore(load_settings(host_env, local_settings=None))
    arm = sandbox.services["arm"]
    latencies: list[float] = []
    after_tick: list[float] = []
    rng = random.Random(13)  # the moment of a burst (not a secret)
    with DevHost(environ=host_env, http_port=0, functions=["detect_fanout", "detect_subscriptions"],
                 host_json={"extensions": {"queues": {"maxPollingInterval": "00:00:00.2",
                                                      "visibilityTimeout": "00:00:00"}}}):
        _wait_for(lambda: _detector_rows(store, ALERTS_TABLE, ids.SUB_WOODGROVE_PROD) > 0,
                  LATENCY_INTERVAL_S * 3)  # the first run (Woodgrove's burst) is done
        for trial, sub in enumerate((ids.SUB_NORTHWIND_DEV, ids.SUB_TAILSPIN_LAB, ids.SUB_FABRIKAM_PROD)[
                :LATENCY_TRIALS]):
            time.sleep(rng.uniform(0, LATENCY_INTERVAL_S))
            written, wall = time.monotonic(), time.time()
            logged = datetime.now(UTC) - timedelta(seconds=15 * 8 + 60)  # the whole burst is in the log already
            arm.add_burst({"at": logged.isoformat(), "subscriptionId": sub,
                           "principalId": f"eeeeeeee-{trial:04d}-4000-8000-{trial:012d}",
                           "principalName": f"miner{trial}@example.org", "count": 8,
                           "regions": ["brazilsouth", "koreacentral"], "vmSize": "Standard_ND96asr_v4",
                           "namePrefix": f"vm-bench{trial}", "key": f"bench-{trial}"})
            _wait_for(lambda s=sub: _detector_rows(store, ALERTS_TABLE, s) > 0, LATENCY_INTERVAL_S * 3)
            latency = time.monotonic() - written
            latencies.append(latency)
            # the timer ticks on wall-clock multiples of the interval: what is left is fan-out, read, judge, store
            after_tick.append(latency - (LATENCY_INTERVAL_S - wall % LATENCY_INTERVAL_S))
    reset_settings_cache()
    mean = sum(latencies) / len(latencies)
    work = max(after_tick)
    return {"interval_s": LATENCY_INTERVAL_S, "latency_mean_s": mean, "latency_max_s": max(latencies),
            "latency_ratio_max": max(latencies) / LATENCY_INTERVAL_S, "tick_to_alert_max_s": work,
            "ratio_at_default_mean": (DEFAULT_INTERVAL_S / 2 + work) / DEFAULT_INTERVAL_S,
            "ratio_at_default_worst": (DEFAULT_INTERVAL_S + work) / DEFAULT_INTERVAL_S, "target_ratio": 1.0}


def _detector_rows(store: Any, table: str, subscription: str) -> int:
    """Compute-burst alerts stored for a subscription (the burst's own alert; a quota jump may come too)."""
    return sum(1 for page in store.query(table, "kind eq 'alert' and source eq 'compute_burst' and "
                                         "subscription_id eq @sub", {"sub": subscription}, select=["source"])
               for _ in page.entities)


def _wait_for(condition: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise RuntimeError(f"detection benchmark: nothing stored within {timeout:.0f}s")


# --- scale ----------------------------------------------------------------------------------------------


def _scale(subscriptions: int) -> dict[str, Any]:
    scenario = default_scenario()
    with local_stack(scenario) as (azurite, sandbox):
        sandbox.services["arm"].sandbox_add_synthetic(subscriptions)
        env = {"AzureWebJobsStorage": azurite.connection_string, "TABLE_NAME_PREFIX": "benchscale",
               **sandbox.app_settings()}
        child = subprocess.run([sys.executable, "-m", "benchmarks.detection", "--child"], input=json.dumps(env),
                               cwd=ROOT, capture_output=True, text=True, check=False)
        if child.returncode != 0:
            raise RuntimeError(f"detection benchmark child failed: {child.stderr[-3000:]}")
        return dict(json.loads(child.stdout.strip().splitlines()[-1]))


def _child(env: dict[str, str]) -> dict[str, Any]:
    from concurrent.futures import ThreadPoolExecutor

    from shared.detection.jobs import DetectionRuntime, run_once
    from shared.settings import load_settings

    settings = load_settings(env, local_settings=None)
    runtime = DetectionRuntime.from_settings(settings)
    started = time.perf_counter()
    first = run_once(runtime)
    first_s = time.perf_counter() - started
    started = time.perf_counter()
    steady = run_once(runtime)
    run_s = time.perf_counter() - started
    if steady.failed or first.failed:
        raise RuntimeError(f"detection failed: {dict(list({**first.failed, **steady.failed}.items())[:5])}")
    rss = peak_rss_mb()
    # the bare calls a steady-state run must make: each subscription's activity log since a moment ago and
    # its usages per region of interest, with the same concurrency; nothing judged, nothing stored
    from shared.detection import state

    reader = runtime.reader()
    targets = runtime.watchlist().cached()
    regions = {t.subscription_id: state.load(runtime.store, t.subscription_id).checkpoint.regions for t in targets}
    since = datetime.now(UTC).replace(microsecond=0)

    def bare(sub: str) -> None:
        # the storage the design must touch too: read the subscription's partition, write one row back
        list(runtime.store.list_partition("benchbare", sub))
        for _ in reader.activity_events(sub, since=since - (datetime.now(UTC) - since) - _overlap(settings)):
            pass
        for region in regions[sub]:
            reader.quota_readings(sub, region)
        runtime.store.upsert("benchbare", {"PartitionKey": sub, "RowKey": "checkpoint", "until": since})

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=settings.detect_concurrency) as pool:
        list(pool.map(bare, [t.subscription_id for t in targets]))
    list(reader.audit_records(since=since - _overlap(settings)))
    bare_s = time.perf_counter() - started
    alerts = sum(t.new for t in first.detectors.values()) - 2  # Woodgrove's two
    return {"subscriptions": len(targets), "first_run_s": first_s, "run_s": run_s, "bare_s": bare_s,
            "peak_rss_mb": rss, "alerts": alerts}


def _overlap(settings: Any) -> Any:
    return timedelta(minutes=settings.detect_overlap_minutes)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        print(json.dumps(_child(json.loads(sys.stdin.read()))))
    else:
        print(json.dumps(run(), indent=2))
