"""Spend export benchmark: a billing export of N line items, streamed and folded into subscription-days.

Figures (each in one run, against a baseline measured in the same run):
- ``time_ratio``: reading the export (stream, decompress, parse, fold) against a bare download +
  decompress + parse of the same files (target <= 1.5); the table writes are timed apart
  (``write_s``, one transaction per subscription: Azurite's pace, not ours) and the wait for
  Microsoft is not timed (the stand-in prepares the files at once);
- ``rss_ratio``: peak memory of the refresh at 1,000,000 line items against 100,000 over the same
  subscription-days (target < 1.5: streaming, memory grows with subscription-days, not lines);
- ``writes_per_day``: table rows written per subscription-day (1.0), and ``second_run_writes`` (0).
Each size runs in a child process so its peak RSS is its own.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import time
from typing import Any

from benchmarks.common import ROOT, local_stack, peak_rss_mb

SUBSCRIPTIONS = 1000
DAYS = 25
"""Usage days inside last month: subscription-days = 25,000 whatever the line count."""


def run(lines: int = 1_000_000, small: int = 100_000) -> dict[str, Any]:
    large = _measure(lines, bare=True)
    little = _measure(small, bare=False)
    return {
        "lines": large["lines"], "subscription_days": large["days"], "refresh_s": large["refresh_s"],
        "read_s": large["read_s"], "bare_s": large["bare_s"], "time_ratio": large["read_s"] / large["bare_s"],
        "target_time_ratio": 1.5, "write_s": large["write_s"], "transactions": large["transactions"],
        "rss_small_mb": little["peak_rss_mb"], "rss_large_mb": large["peak_rss_mb"],
        "rss_ratio": large["peak_rss_mb"] / little["peak_rss_mb"], "target_rss_ratio": 1.5,
        "writes_per_day": large["written"] / large["days"], "second_run_writes": large["second_written"],
    }


def _measure(lines: int, *, bare: bool) -> dict[str, Any]:
    import datetime as dt
    import math

    from sandbox.billing import BillingData

    first, last = BillingData(subscriptions=[]).period("last")
    days = (last - max(first, dt.datetime.now(dt.UTC).date() - dt.timedelta(days=DAYS))).days + 1
    per_meter = max(1, math.ceil(lines / (SUBSCRIPTIONS * days * 2)))  # at least ``lines`` line items
    with local_stack() as (azurite, sandbox):
        graph: Any = sandbox.services["graph"]
        graph.use_billing(BillingData.synthetic(subscriptions=SUBSCRIPTIONS, days=DAYS, resources_per_meter=per_meter,
                                                seed=7, blob_lines=250_000), running_polls=1)
        env = {"AzureWebJobsStorage": azurite.connection_string, "TABLE_NAME_PREFIX": "bench",
               **sandbox.app_settings()}
        child = subprocess.run([sys.executable, "-m", "benchmarks.spend", "--child", "1" if bare else "0"],
                               input=json.dumps(env), cwd=ROOT, capture_output=True, text=True, check=False)
        if child.returncode != 0:
            raise RuntimeError(f"spend benchmark child failed: {child.stderr[-3000:]}")
        return dict(json.loads(child.stdout.strip().splitlines()[-1]))


def _child(env: dict[str, str], with_bare: bool) -> dict[str, Any]:
    from shared import factory
    from shared.settings import load_settings
    from shared.spend.refresh import refresh_spend
    from shared.spend.series import SpendSeries

    settings = load_settings(env, local_settings=None)
    store = factory.table_store(settings)
    series = SpendSeries(store)
    client = factory.billing_export(settings, factory.app_tokens(settings))
    client._sleep = lambda _seconds: None  # the stand-in's Retry-After is counted, not slept (its run is instant)
    store.table_client("spenddays")  # create the table outside the timing
    started = time.perf_counter()
    first = refresh_spend(client, series, currency_code="USD", periods=("last",))
    refresh_s = time.perf_counter() - started
    rss = peak_rss_mb()
    again = factory.billing_export(settings, factory.app_tokens(settings))
    again._sleep = lambda _seconds: None
    second = refresh_spend(again, series, currency_code="USD", periods=("last",))
    figures: dict[str, Any] = {"lines": first.fold.lines, "days": first.write.days, "written": first.write.written,
                               "second_written": second.write.written, "refresh_s": refresh_s, "peak_rss_mb": rss,
                               "wait_s": first.wait_s, "read_s": first.read_s, "write_s": first.write_s,
                               "transactions": first.write.transactions}
    if with_bare:
        import httpx

        from shared.http import verify_from_settings

        manifest = again.wait(again.start(billing_period="last", currency_code="USD"))
        started = time.perf_counter()
        parsed = 0
        with httpx.Client(verify=verify_from_settings(settings), timeout=120) as http:
            for blob in manifest.blobs:
                data = gzip.decompress(http.get(manifest.blob_url(blob)).content)
                parsed += sum(1 for raw in data.splitlines() if json.loads(raw))
        figures["bare_s"] = time.perf_counter() - started
        assert parsed == first.fold.lines, (parsed, first.fold.lines)
    return figures


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "--child":
        print(json.dumps(_child(json.loads(sys.stdin.read()), sys.argv[2] == "1")))
    else:
        print(json.dumps(run(*(int(a) for a in sys.argv[1:3]))))
