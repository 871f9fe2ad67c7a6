"""Time to containment: 50 signed fraud webhooks at once, each to its subscription's first deallocate.

50 customers, one Azure subscription each with a running VM and an Active crypto-mining alert
about it, under a policy that deallocates automatically (``containment_policy.toml`` beside this
file). The dev host runs as ``make run`` runs it (a process of its own, host.json's queue
polling); one warm-up containment first, so imports, the Partner Center token, tables and queues
are not counted. Then the sandbox delivers the 50 webhooks at once.

Stages, per subscription, from timestamps the system records anyway:

* receive: the delivery attempt's start (the sandbox's delivery record) to the receiver's
  "alerts-sync job enqueued" log line;
* sync queue: to the "alerts-sync job started" log line;
* sync: to the sync's "respond job(s) sent" log line;
* respond queue: to the responder's "respond ... started" log line;
* respond: to the deallocate's answer at the ARM stand-in (its request log), the end point;
  ``respond_until_token`` is the part of it until the customer's ARM token was answered.

Baseline, in the same run against the same stand-ins: per subscription, back to back with a bare
httpx client, the calls no implementation can avoid (an ARM token for the customer's tenant, the
fraud events page, the VM's instance view, the deallocate), plus the storage work each stage
cannot avoid with the same storage clients (receive: the delivery row and the sync job; sync: the
index query, the alert's transaction and the respond job; respond: the alert read and the ledger
claim). Each stage's p50 and p99 is printed next to its share of that baseline (median of 50
chains). Goal: p99 under 10 s; no stage but the queue waits over 3 x its share.

``<stage>_alone_ratio`` is the same ratio for one containment with nothing else running (after the
warm-up; the median of ``ALONE_RUNS`` made one after another): what a stage costs in itself, apart
from the 50 competing for one host process.
``cores_busy`` is the CPU the host, Azurite and the stand-ins used together over the run, in cores.
"""

from __future__ import annotations

import copy
import itertools
import os
import statistics
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.common import default_scenario, percentile
from benchmarks.stack import AppStack, app_stack, parse_time, wait_until

SUBSCRIPTIONS = 50
ALONE_RUNS = 5
"""Containments run alone, one after another, for the ``<stage>_alone_ratio`` figures (their median)."""
LIMIT_SECONDS = 180.0
"""The longest the 50 containments may take before the benchmark fails."""
STAGES = ("receive", "sync_queue", "sync", "respond_queue", "respond")
QUEUE_STAGES = ("sync_queue", "respond_queue")
GOAL_P99_S = 10.0
GOAL_STAGE_RATIO = 3.0
POLICY_TEMPLATE = Path(__file__).with_name("containment_policy.toml")


@dataclass(frozen=True)
class Target:
    """One benchmark subscription: its customer, the alert, the VM the app stops, the VMs the baseline stops (back
    to back, and all at once)."""

    index: int
    customer: str
    subscription: str
    event_id: str
    vm: str
    bare_vm: str
    burst_vm: str


def _uuid(kind: str, i: int) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"bench-containment-{kind}-{i}"))


def scenario(count: int) -> tuple[dict[str, Any], list[Target]]:
    """The default scenario plus ``count`` (+1 warm-up, +ALONE_RUNS alone) customers, each a subscription, two
    running VMs, an alert."""
    from sandbox import ids

    data = default_scenario()
    template = next(a for a in data["partner_center"]["alerts"] if a.get("eventId") == "{{id:MINING_ALERT_EVENT_ID}}")
    sam = next(app for app in data["entra"]["apps"] if app["client_id"] == "{{id:PARTNER_APP_CLIENT_ID}}")
    arm = data["arm"]
    targets = []
    for i in range(count + 1 + ALONE_RUNS):
        customer, subscription = _uuid("customer", i), _uuid("subscription", i)
        group = f"/subscriptions/{subscription}/resourceGroups/rg-bench/providers/Microsoft.Compute/virtualMachines"
        target = Target(i, customer, subscription, f"{subscription}_vm-mine-{i:03d}", f"{group}/vm-mine-{i:03d}",
                        f"{group}/vm-bare-{i:03d}", f"{group}/vm-burst-{i:03d}")
        targets.append(target)
        data["tenants"]["customers"].append({
            "id": customer, "name": f"Bench customer {i:03d}", "domain": f"bench{i:03d}.example", "gdap": True,
            "subscriptions": [{"id": subscription, "plan": _uuid("plan", i), "name": f"Bench {i:03d}"}]})
        sam["tenants"].append(customer)
        arm["roleAssignments"].append({"scope": f"/subscriptions/{subscription}",
                                       "principalId": ids.ADMIN_AGENT_USER_ID, "roleDefinitionName": "Owner"})
        arm["virtualMachines"] += [{"id": vm, "location": "eastus", "vmSize": "Standard_NC6s_v3",
                                    "powerState": "running", "timeCreated": "{{now-1h}}"}
                                   for vm in (target.vm, target.bare_vm, target.burst_vm)]
        alert = copy.deepcopy(template)
        name = target.vm.rsplit("/", 1)[1]
        alert.update({
            "eventId": target.event_id, "customerTenantId": customer, "customerFriendlyName": f"Bench customer {i:03d}",
            "subscriptionId": subscription, "subscriptionName": f"Bench {i:03d}", "entityId": name,
            "entityName": name, "entityUrl": target.vm, "resourceName": name, "resourceGroupName": "rg-bench",
            "affectedResources": [{"azureResourceId": target.vm, "type": "Microsoft.Compute/virtualMachines"}],
        })
        data["partner_center"]["alerts"].append(alert)
    return data, targets


def policy(targets: list[Target]) -> str:
    subscriptions = ", ".join(f'"{t.subscription}"' for t in targets)
    return POLICY_TEMPLATE.read_text(encoding="utf-8").format(subscriptions=subscriptions)


# -- the app -----------------------------------------------------------------------------------


def _first_deallocates(stack: AppStack) -> dict[str, float]:
    """Time of the first successful (2xx) deallocate per VM id (lower case), from the ARM stand-in's log."""
    found: dict[str, float] = {}
    for request in stack.sandbox.requests("arm"):
        if request.method == "POST" and request.path.lower().endswith("/deallocate") and 200 <= request.status < 300:
            vm = request.path.lower().rsplit("/", 1)[0]
            found.setdefault(vm, request.time)
    return found


def _marks(stack: AppStack, targets: list[Target]) -> dict[str, dict[str, float]]:
    """Per subscription: the time of each stage's end, from the host's log lines."""
    by_sub = {t.subscription: t for t in targets}
    by_alert = {t.event_id.lower(): t for t in targets}
    marks: dict[str, dict[str, float]] = {t.subscription: {} for t in targets}
    for line in stack.log_lines():
        message = str(line.get("message", ""))
        sub = str(line.get("subscription", "")).lower()
        when = parse_time(str(line["time"]))
        if sub in by_sub:
            if line.get("job") == "webhook" and "alerts-sync job enqueued" in message:
                marks[sub].setdefault("receive", when)
            elif line.get("job") == "sync" and message.startswith("alerts-sync job started"):
                marks[sub].setdefault("sync_queue", when)
            elif line.get("job") == "sync" and "respond job(s) sent" in message:
                marks[sub].setdefault("sync", when)
        alert = str(line.get("alert_id", "")).lower()
        started = message.startswith("respond ") and " started (" in message
        if alert in by_alert and line.get("job") == "respond" and started:
            marks[by_alert[alert].subscription].setdefault("respond_queue", when)
    return marks


def _contain(stack: AppStack, targets: list[Target], limit: float) -> tuple[list[Any], float]:
    """Raise the webhooks at once; wait for every VM's first deallocate. (deliveries, seconds)."""
    pc = stack.sandbox.services["partner_center"]
    started = time.monotonic()
    deliveries = [pc.raise_fraud_event(t.subscription) for t in targets]
    wanted = {t.vm.lower() for t in targets}

    def progress(elapsed: float) -> None:
        done = len(wanted & set(_first_deallocates(stack)))
        print(f"  containment: {elapsed:.0f}s, {done}/{len(wanted)} VMs deallocated", flush=True)

    wait_until(lambda: wanted <= set(_first_deallocates(stack)), limit=limit,
               what=f"the deallocation of all {len(wanted)} VMs", progress=progress, every=10.0, poll=0.2)
    return deliveries, time.monotonic() - started


def _stages(stack: AppStack, targets: list[Target], deliveries: list[Any]) -> dict[str, list[float]]:
    marks = _marks(stack, targets)
    ends = _first_deallocates(stack)
    tokens: dict[str, float] = {}  # each customer's first ARM token, answered by the Entra stand-in
    for request in stack.sandbox.requests("entra"):
        if request.method == "POST" and request.path.endswith("/token") and request.status == 200:
            tokens.setdefault(request.path.split("/")[1].lower(), request.time)
    stages: dict[str, list[float]] = {name: [] for name in (*STAGES, "total", "respond_until_token")}
    missing: list[str] = []
    for target, delivery in zip(targets, deliveries, strict=True):
        mark = marks[target.subscription]
        start = parse_time(delivery.attempts[0].date_time_utc + "+00:00")
        points = [start, *(mark.get(name) for name in STAGES[:-1]), ends[target.vm.lower()]]
        if any(p is None for p in points):
            missing.append(f"{target.subscription}: {', '.join(n for n in STAGES[:-1] if n not in mark)}")
            continue
        times = [float(p) for p in points if p is not None]
        for name, (a, b) in zip(STAGES, itertools.pairwise(times), strict=True):
            stages[name].append(b - a)
        stages["total"].append(times[-1] - times[0])
        if target.customer in tokens:  # how much of the respond stage is getting the customer's ARM token
            stages["respond_until_token"].append(tokens[target.customer] - times[-2])
    if missing:
        raise RuntimeError(f"{len(missing)} containment(s) lack a log mark: {'; '.join(missing[:3])}")
    return stages


# -- the baseline ------------------------------------------------------------------------------


@dataclass
class _Bare:
    """The baseline's clients: bare httpx for the stand-ins, the same storage clients as the app."""

    client: Any
    store: Any
    queue: Any
    urls: dict[str, str]
    secret: str
    refresh: str
    table: str = "benchbare"

    def token(self, tenant: str, resource: str) -> str:
        """A refresh-token redemption, as the app's MSAL makes it (the token rolls)."""
        from sandbox import ids

        answer = self.client.post(f"{self.urls['entra']}/{tenant}/oauth2/v2.0/token", data={
            "grant_type": "refresh_token", "client_id": ids.PARTNER_APP_CLIENT_ID, "client_secret": self.secret,
            "refresh_token": self.refresh, "scope": f"{resource}/.default offline_access"})
        answer.raise_for_status()
        document = answer.json()
        self.refresh = str(document.get("refresh_token") or self.refresh)
        return str(document["access_token"])

    def chain(self, target: Target, pc_token: str, *, vm: str = "") -> tuple[float, float, float]:
        """One target's chain, back to back: (receive, sync, respond) seconds; it stops ``vm`` (the bare VM)."""
        store, queue, client = self.store, self.queue, self.client
        t0 = time.perf_counter()
        # receive: the delivery row, the sync job
        store.insert_once(self.table, {"PartitionKey": uuid.uuid4().hex, "RowKey": "delivery", "State": "received"})
        queue.send_json("bench-bare", {"scope": "subscription", "subscription_id": target.subscription})
        t1 = time.perf_counter()
        # sync: the alerts index, the fraud events page, the alert's transaction, the respond job
        list(store.query(self.table, "PartitionKey eq @p", {"p": target.customer}))
        page = client.get(f"{self.urls['partner_center']}/v1/fraudEvents", params={
            "SubscriptionId": target.subscription, "EventStatus": "Active", "PageSize": 100, "PageNumber": 1},
            headers={"Authorization": f"Bearer {pc_token}", "X-NewEventsModel": "true"})
        page.raise_for_status()
        store.upsert_many(self.table, [{"PartitionKey": target.customer, "RowKey": target.event_id, "n": 1}])
        queue.send_json("bench-bare", {"alert_key": target.event_id, "version": 1})
        t2 = time.perf_counter()
        # respond: the alert, the ledger claim, an ARM token for the customer, the instance view, the deallocate
        store.get(self.table, target.customer, target.event_id)
        store.insert_once(self.table, {"PartitionKey": target.event_id, "RowKey": "stop_resources"})
        headers = {"Authorization": f"Bearer {self.token(target.customer, 'https://management.azure.com')}"}
        vm = f"{self.urls['arm']}{vm or target.bare_vm}"
        client.get(f"{vm}/instanceView", params={"api-version": "2024-07-01"}, headers=headers).raise_for_status()
        stop = client.post(f"{vm}/deallocate", params={"api-version": "2024-07-01"}, headers=headers)
        if stop.status_code != 202:
            raise RuntimeError(f"baseline deallocate answered {stop.status_code}: {stop.text[:300]}")
        t3 = time.perf_counter()
        return t1 - t0, t2 - t1, t3 - t2


def _baseline(stack: AppStack, targets: list[Target], *, at_once: bool = False) -> dict[str, list[float]]:
    """Each target's unavoidable chain, back to back: one target after the other, or (``at_once``) all the
    targets' chains at the same time, each on its own thread with its own refresh token (they roll)."""
    import httpx

    from sandbox import ids
    from shared.storage.queues import QueueSender
    from shared.storage.tables import TableStore

    sandbox = stack.sandbox
    entra: Any = sandbox.services["entra"]
    secret = next(a for a in sandbox.scenario["entra"]["apps"] if a["client_id"] == ids.PARTNER_APP_CLIENT_ID)["secret"]
    shares: dict[str, list[float]] = {name: [] for name in ("receive", "sync", "respond", "total")}
    limits = httpx.Limits(max_connections=len(targets) + 10, max_keepalive_connections=len(targets) + 10)
    with httpx.Client(verify=str(sandbox.ca_cert_path), timeout=30, limits=limits) as client:
        def bare() -> _Bare:  # its own refresh token: the app's is not rolled
            return _Bare(client, store, queue, {name: sandbox.url(name) for name in ("entra", "partner_center", "arm")},
                         secret, entra.issue_refresh_token(ids.PARTNER_APP_CLIENT_ID))

        store, queue = TableStore(stack.settings), QueueSender(stack.settings)
        first = bare()
        store.table_client(first.table)  # created outside the timing, as the app's tables are
        queue.send_json("bench-bare", {"warm": True})
        pc_token = first.token(ids.PARTNER_TENANT_ID, "https://api.partnercenter.microsoft.com")  # cached, as the app's
        if at_once:
            from concurrent.futures import ThreadPoolExecutor

            clients = [bare() for _ in targets]
            with ThreadPoolExecutor(max_workers=len(targets)) as pool:
                chains = list(pool.map(lambda pair: pair[0].chain(pair[1], pc_token, vm=pair[1].burst_vm),
                                       zip(clients, targets, strict=True)))
        else:
            chains = [first.chain(target, pc_token) for target in targets]
        for receive, sync, respond in chains:
            shares["receive"].append(receive)
            shares["sync"].append(sync)
            shares["respond"].append(respond)
            shares["total"].append(receive + sync + respond)
    return shares


# -- the run -----------------------------------------------------------------------------------


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time so far of a process and the live processes of its group (Linux /proc; 0 elsewhere)."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pid or stat.parent.name == str(pid):  # fields[2]: the process group
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def _cpu_now(stack: AppStack) -> dict[str, float]:
    """CPU seconds so far of the host, Azurite, and this process (the stand-ins and the benchmark's polling)."""
    own = os.times()
    return {"host": _cpu_seconds(stack.host.process.pid), "azurite": _cpu_seconds(stack.azurite.process.pid),
            "standins": own.user + own.system}


def run(subscriptions: int = SUBSCRIPTIONS, limit: float = LIMIT_SECONDS) -> dict[str, Any]:
    data, targets = scenario(subscriptions)
    warm, alone, measured = targets[0], targets[1:1 + ALONE_RUNS], targets[1 + ALONE_RUNS:]
    with app_stack(data, policy(targets)) as stack:
        # Warm-up: one containment end to end (imports, the Partner Center token, tables, queues, certificate).
        _contain(stack, [warm], limit)
        # Alone, one after another: each stage's own cost, with no other containment competing for the host.
        solo: dict[str, list[float]] = {}
        for target in alone:
            for name, values in _stages(stack, [target], _contain(stack, [target], limit)[0]).items():
                solo.setdefault(name, []).extend(values)
        load = os.getloadavg()[0]
        cpu_before, trips = _cpu_now(stack), sum(stack.storage_requests().values())
        deliveries, wall = _contain(stack, measured, limit)
        cpu = {name: seconds - cpu_before[name] for name, seconds in _cpu_now(stack).items()}
        trips = sum(stack.storage_requests().values()) - trips  # idle queue polls included
        stages = _stages(stack, measured, deliveries)
        shares = _baseline(stack, measured)
        burst = _baseline(stack, measured, at_once=True)
    figures: dict[str, Any] = {"subscriptions": len(measured), "wall_s": wall,
                               "p50_s": percentile(stages["total"], 50), "p99_s": percentile(stages["total"], 99),
                               "goal_p99_s": GOAL_P99_S}
    over: list[str] = []
    for name in STAGES:
        values = stages[name]
        figures[f"{name}_p50_ms"] = percentile(values, 50) * 1000
        figures[f"{name}_p99_ms"] = percentile(values, 99) * 1000
        if name in QUEUE_STAGES:  # the first message's wait is the poll's alone; the others wait for a slot too
            figures[f"{name}_min_ms"] = min(values) * 1000
        if name in shares:  # the queue waits have no share: nothing in the chain waits in a queue
            share = statistics.median(shares[name])
            figures[f"{name}_share_ms"] = share * 1000
            figures[f"{name}_ratio_p50"] = percentile(values, 50) / share
            figures[f"{name}_ratio_p99"] = percentile(values, 99) / share
            figures[f"{name}_alone_ratio"] = statistics.median(solo[name]) / share
            # The bare chains all at once: what the stand-ins and Azurite make of 50 at a time for any client.
            figures[f"{name}_bare_at_once_p50_ms"] = percentile(burst[name], 50) * 1000
            figures[f"{name}_bare_at_once_ratio_p50"] = percentile(burst[name], 50) / share
            if figures[f"{name}_ratio_p99"] > GOAL_STAGE_RATIO:
                over.append(name)
    figures["respond_until_token_p50_ms"] = percentile(stages["respond_until_token"], 50) * 1000
    figures["respond_until_token_p99_ms"] = percentile(stages["respond_until_token"], 99) * 1000
    figures["alone_s"] = statistics.median(solo["total"])
    figures["baseline_chain_ms"] = statistics.median(shares["total"]) * 1000
    figures["bare_at_once_p99_s"] = percentile(burst["total"], 99)
    figures["p50_ratio_vs_chain"] = figures["p50_s"] * 1000 / figures["baseline_chain_ms"]
    figures["host_cpu_s"] = cpu["host"]
    figures["azurite_cpu_s"] = cpu["azurite"]
    figures["standins_cpu_s"] = cpu["standins"]
    figures["cores_busy"] = sum(cpu.values()) / wall  # of os.cpu_count(): near it, the machine is the bound
    figures["cores"] = os.cpu_count() or 0
    figures["storage_round_trips"] = trips
    figures["load_avg_1m"] = load
    figures["goal_met"] = figures["p99_s"] < GOAL_P99_S and not over
    figures["stages_over_3x"] = ",".join(over) or "none"
    return figures
