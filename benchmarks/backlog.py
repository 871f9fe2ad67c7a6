"""The onboarding backlog: 10,000 open alerts for 200 customers on a first run, default policy.

A new user's first poll meets years of open alerts (Microsoft asks partners to resolve every open
alert back to December 2021). The dev host runs as ``make run`` runs it, with the repository's
default policy (notifications throttled, containment waiting for approval); the benchmark fires
the poll timer once and waits until every alert the stand-ins serve is stored and every respond
job is answered (no alert row left ``pending``), printing progress, bounded by ``limit``.

Figures: the time to the last answer, and storage round trips counted in Azurite's access log
(tables and queues, the benchmark's own progress queries taken out). Baseline, in the same run:
the bare storage work the result needs, with the same storage clients: a batched upsert of the
stored alert rows (up to 100 per transaction per customer) and of the ledger rows the answers
wrote (one transaction per alert: its rows share a partition).
"""

from __future__ import annotations

import os
import time
from collections import Counter
from typing import Any

from benchmarks.common import ROOT, default_scenario
from benchmarks.stack import AppStack, app_stack

ALERTS = 10_000
CUSTOMERS = 200
LIMIT_SECONDS = 3600.0
"""The longest the first run may take before the benchmark fails (on the 2-core development machine)."""
PROGRESS_EVERY = 30.0


def scenario(alerts: int, customers: int) -> dict[str, Any]:
    """The default scenario's tenants, with ``alerts`` generated alerts over ``customers`` GDAP customers."""
    import datetime as dt

    from sandbox import ids
    from sandbox.partner_center import GeneratedAlerts

    data = default_scenario()
    section = dict(data.get("partner_center") or {})
    section["generate"] = {"alerts": alerts, "customers": customers}
    section["alerts"] = []  # only the generated ones, so the counts are exact
    data["partner_center"] = section
    sam = next(app for app in data["entra"]["apps"] if app["client_id"] == "{{id:PARTNER_APP_CLIENT_ID}}")
    # The generated customers become real ones: GDAP tenants the SAM token redeems in, with Owner on
    # their subscription, so the answers (activity log, notification) meet no refusal the real
    # partner would not meet.
    for i, (customer, subscription) in enumerate(GeneratedAlerts(0, customers, dt.datetime.now(dt.UTC)).customers):
        data["tenants"]["customers"].append({
            "id": customer, "name": f"Generated customer {i:04d}", "domain": f"gen{i:04d}.example", "gdap": True,
            "subscriptions": [{"id": subscription, "plan": subscription, "name": f"Generated {i:04d}"}]})
        sam["tenants"].append(customer)
        data["arm"]["roleAssignments"].append({"scope": f"/subscriptions/{subscription}",
                                               "principalId": ids.ADMIN_AGENT_USER_ID, "roleDefinitionName": "Owner"})
    return data


class _Progress:
    """What the app has done so far, read from the alerts table (the reads are counted, to be taken out)."""

    def __init__(self, stack: AppStack, served: int) -> None:
        from shared.storage.tables import TableStore

        self.store = TableStore(stack.settings)
        self.served = served
        self.requests = 0
        self.stored = 0
        self.states: Counter[str] = Counter()

    def read(self) -> bool:
        from shared.names import ALERTS_TABLE

        stored, states = 0, Counter[str]()
        try:
            for page in self.store.query(ALERTS_TABLE, "kind eq 'alert'", select=["respond_state"]):
                self.requests += 1
                stored += len(page.entities)
                states.update(str(e.get("respond_state") or "none") for e in page.entities)
        except Exception as exc:  # the table does not exist before the first write
            if "TableNotFound" not in str(exc) and "ResourceNotFound" not in type(exc).__name__:
                raise
            self.requests += 1
        self.stored, self.states = stored, states
        return stored >= self.served and states["pending"] == 0

    def describe(self) -> str:
        return (f"{self.stored}/{self.served} alerts stored, {self.states['pending']} answers pending, "
                f"{self.states['handled']} answered, {self.states['poisoned']} poisoned")


def _bare(stack: AppStack) -> dict[str, Any]:
    """The bare storage work: the same alert rows and ledger rows, batched, into fresh tables."""
    from shared.names import ALERTS_TABLE, LEDGER_TABLE
    from shared.storage.tables import TableStore

    store = TableStore(stack.settings)

    def rows(table: str, query: str | None = None) -> list[dict[str, Any]]:
        return [dict(entity.items()) for page in store.query(table, query) for entity in page.entities]

    alerts, ledger = rows(ALERTS_TABLE, "kind eq 'alert'"), rows(LEDGER_TABLE)
    store.table_client("barealerts")
    store.table_client("bareledger")
    started = time.perf_counter()
    first = store.upsert_many("barealerts", alerts)
    second = store.upsert_many("bareledger", ledger)
    return {"bare_s": time.perf_counter() - started, "bare_round_trips": first.round_trips + second.round_trips,
            "bare_alert_rows": len(alerts), "ledger_rows": len(ledger)}


def run(alerts: int | None = None, customers: int | None = None, limit: float | None = None) -> dict[str, Any]:
    """The first run; sizes from the arguments, else BENCH_BACKLOG_ALERTS / _CUSTOMERS / _LIMIT_S, else 10,000 / 200."""
    from chaos.campaign import served_alert_keys

    alerts = alerts or int(os.environ.get("BENCH_BACKLOG_ALERTS") or ALERTS)
    customers = customers or int(os.environ.get("BENCH_BACKLOG_CUSTOMERS") or CUSTOMERS)
    limit = limit or float(os.environ.get("BENCH_BACKLOG_LIMIT_S") or LIMIT_SECONDS)

    policy = (ROOT / "policy" / "default.toml").read_text(encoding="utf-8")
    with app_stack(scenario(alerts, customers), policy) as stack:
        served = len(served_alert_keys(stack.sandbox, sources=("partner_center",)))
        progress = _Progress(stack, served)
        before = sum(stack.storage_requests().values())
        started = time.monotonic()
        stack.fire("poll_alerts")
        last = started
        while not progress.read():
            now = time.monotonic()
            if now - started > limit:
                raise TimeoutError(f"backlog: not done within the {limit:.0f} s limit: {progress.describe()}")
            if now - last >= PROGRESS_EVERY:
                print(f"  backlog: {now - started:.0f}s, {progress.describe()}", flush=True)
                last = now
            time.sleep(min(15.0, max(2.0, served / 1000)))  # each look reads every alert row
        elapsed = time.monotonic() - started
        counts = stack.storage_requests()
        trips = sum(counts.values()) - before - progress.requests
        tables = sum(v for k, v in counts.items() if k.startswith("table:"))
        queues = sum(v for k, v in counts.items() if k.startswith("queue:"))
        by_name = Counter({k: v for k, v in counts.items()}).most_common(6)
        bare = _bare(stack)
    figures: dict[str, Any] = {
        "alerts_served": served, "customers": customers, "answered": progress.states["handled"],
        "poisoned": progress.states["poisoned"], "first_run_s": elapsed, "alerts_per_s": served / elapsed,
        "round_trips": trips, "table_requests": tables, "queue_requests": queues, **bare,
        "time_ratio": elapsed / bare["bare_s"], "round_trip_ratio": trips / bare["bare_round_trips"],
        "busiest": ",".join(f"{k}={v}" for k, v in by_name),
    }
    return figures
