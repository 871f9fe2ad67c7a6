"""Sync throughput and memory: N alerts for C customers served by the sandbox in pages of 500.

The sync runs in a child process (so its peak RSS is its own, not the sandbox's), next to a bare
batched upsert of the same alert entities in the same child. Targets (issue 16): time ratio at
most 1.3; round trips at most 1.05 x the minimum (the transactions batching allows, one query, and
one queue put per transaction that carries respond jobs: a customer's jobs in batches of 100); a
second sync writes and enqueues nothing; peak RSS at 100k under 2 x that at 10k (the sync streams
page by page).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from collections import Counter
from typing import Any

from benchmarks.common import ROOT, default_scenario, local_stack, peak_rss_mb


def _scenario(alerts: int, customers: int) -> dict[str, Any]:
    scenario = default_scenario()
    section = dict(scenario.get("partner_center") or {})
    section["generate"] = {"alerts": alerts, "customers": customers}
    section["alerts"] = []  # only the generated ones, so the counts are exact
    scenario["partner_center"] = section
    return scenario


def run(alerts: int = 10_000, customers: int = 200, *, bare: bool = True) -> dict[str, Any]:
    with local_stack(_scenario(alerts, customers)) as (azurite, sandbox):
        env = {"AzureWebJobsStorage": azurite.connection_string, "TABLE_NAME_PREFIX": "bench",
               "ALERT_SOURCES": "partner_center", **sandbox.app_settings()}
        # The environment goes through stdin: it holds the sandbox's (fake) client secret, which
        # does not belong on a command line.
        child = subprocess.run([sys.executable, "-m", "benchmarks.sync", "--child", "1" if bare else "0"],
                               input=json.dumps(env), cwd=ROOT, capture_output=True, text=True, check=False)
        if child.returncode != 0:
            raise RuntimeError(f"sync benchmark child failed: {child.stderr[-3000:]}")
        return dict(json.loads(child.stdout.strip().splitlines()[-1]))


def _child(env: dict[str, str], with_bare: bool) -> dict[str, Any]:
    from shared.alerts import to_entity
    from shared.intake.jobs import IntakeRuntime, run_sync
    from shared.intake.sync import SyncScope
    from shared.settings import load_settings
    from shared.sources.partner_center import parse as from_partner_center
    from shared.storage.tables import TableStore

    settings = load_settings(env, local_settings=None)
    runtime = IntakeRuntime.from_settings(settings)
    started = time.perf_counter()
    first = run_sync(runtime, SyncScope(), trigger="bench").results["partner_center"]
    sync_s = time.perf_counter() - started
    rss_mb = peak_rss_mb()
    second = run_sync(runtime, SyncScope(), trigger="bench").results["partner_center"]

    per_customer: Counter[str] = Counter()
    jobs_per_customer: Counter[str] = Counter()
    entities = []
    source = runtime.source("partner_center")
    started = time.perf_counter()  # the fetch and parse the sync also does, which no upsert does
    for page in source.pages(SyncScope()):
        for record in page:
            alert = from_partner_center(record)
            per_customer[alert.customer_tenant_id] += 1
            if alert.status != "resolved":  # a first sync answers every alert that is not history
                jobs_per_customer[alert.customer_tenant_id] += 1
            if with_bare:
                entities.append(to_entity(alert, version=1, changed_at=alert.detected_at or time_now()))
    fetch_s = time.perf_counter() - started
    min_puts = sum(math.ceil(n / 100) for n in jobs_per_customer.values())
    minimum = sum(math.ceil(n / 100) for n in per_customer.values()) + min_puts + 1
    figures: dict[str, Any] = {
        "alerts": first.fetched, "customers": len(per_customer), "sync_s": sync_s, "peak_rss_mb": rss_mb,
        "transactions": first.transactions, "queries": first.queries, "enqueued": first.enqueued,
        "messages": first.messages, "fetch_and_parse_s": fetch_s, "round_trips": first.round_trips,
        "min_round_trips": minimum,
        "round_trip_ratio": first.round_trips / minimum, "target_round_trip_ratio": 1.05,
        "second_sync_writes": second.transactions, "second_sync_enqueued": second.enqueued,
    }
    if with_bare:
        bare_store = TableStore(load_settings({**env, "TABLE_NAME_PREFIX": "bare"}, local_settings=None))
        bare_store.table_client("alerts")  # create the table outside the timing
        started = time.perf_counter()
        batch = bare_store.upsert_many("alerts", entities)
        bare_s = time.perf_counter() - started
        # The messages the sync must enqueue (one per transaction, its jobs batched), put bare with
        # the same parallelism: Azurite's queue takes ~300 puts/s whatever the client does.
        from concurrent.futures import ThreadPoolExecutor

        from shared.storage.queues import QueueSender

        sender = QueueSender(load_settings({**env, "TABLE_NAME_PREFIX": "bare"}, local_settings=None))
        sender.send_json("bare-respond", {"warm": True})
        job = {"alert_key": "partner_center:" + "x" * 60, "partition": "a" * 36, "row": "r" * 80, "version": 1,
               "reasons": ["new alert"], "is_test": False}
        per_message = max(1, round(first.enqueued / max(1, first.messages)))
        message = {"kind": "respond-batch", "alerts": [job] * per_message, "schema_version": 1}
        started = time.perf_counter()
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda _: sender.send_json("bare-respond", message), range(first.messages)))
        enqueue_s = time.perf_counter() - started
        figures.update({"bare_upsert_s": bare_s, "bare_transactions": batch.transactions,
                        "time_ratio": sync_s / bare_s, "target_time_ratio": 1.3, "bare_enqueue_s": enqueue_s,
                        "time_ratio_vs_upsert_plus_enqueue": sync_s / (bare_s + enqueue_s)})
    return figures


def time_now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "--child":
        print(json.dumps(_child(json.loads(sys.stdin.read()), sys.argv[2:] != ["0"])))
