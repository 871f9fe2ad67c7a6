"""``make chaos``: kill the function host again and again while a crypto-mining alert is contained.

Azurite and the sandbox's stand-ins keep running, as Azure's storage and Microsoft's services
would. The function host (the dev host, ``python -m chaos.host``) runs as a subprocess with a
policy that contains the sandbox's crypto-mining alert automatically (deallocate the VMs, suspend
the subscription, in enforce). While it runs, the campaign injects throttling (429 with
Retry-After), 5xx, delays and dropped connections at the stand-ins, raises signed webhooks,
lets the poll timer run, doubles the alert's hit count once (a new alert version), and SIGKILLs
the host at seeded random moments, restarting it each time.

A killed invocation's queue message comes back only after its lease; so after the last kill the
faults stop, the host runs on, and the campaign waits until the work settles (queues empty, no
row running, every delivery finished, every served alert stored), bounded by ``max_seconds``.

Then it prints the figures and fails (exit 1) when one is wrong: alerts stored vs served by the
stand-ins; successful destructive calls per target at ARM and Partner Center, from the sandbox's
request log (exactly 1 each); ledger rows left running (0); secrets found in the host's logs (0).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from chaos.faults import describe, random_fault
from chaos.host import HostProcess
from chaos.secrets import Leak, issued_secrets, scan
from devhost.host import schedule_settings
from devhost.keys import FunctionKeys

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SCENARIO = REPO_ROOT / "sandbox" / "scenarios" / "default.json"
NEVER = "0 0 0 1 1 *"
"""An NCRONTAB schedule that does not come round during a campaign (1 January, midnight)."""
FRAUD_EVENT = "azure-fraud-event-detected"
RESOLVED_WINDOW_DAYS = 30
MINING_TYPE = "NetworkConnectionsToCryptoMiningPools"
STREAM_RESOURCE_GROUP = "rg-chaos"

_ARM_STOP = re.compile(r"^(?P<target>/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.Compute/"
                       r"(?:virtualMachines|virtualMachineScaleSets)/[^/]+)/(?:deallocate|powerOff)$", re.IGNORECASE)
_PC_SUBSCRIPTION = re.compile(r"^/v1/customers/(?P<customer>[^/]+)/subscriptions/(?P<subscription>[^/]+)$",
                              re.IGNORECASE)
_PC_CANCEL = re.compile(r"^/v1/customers/[^/]+/subscriptions/[^/]+/azureEntitlements/(?P<entitlement>[^/]+)/cancel$",
                        re.IGNORECASE)


def campaign_policy(subscription_id: str, stream_subscription_id: str) -> str:
    """The policy the campaign runs: contain crypto-mining with no human.

    The scenario's mining alert on ``subscription_id``: deallocate its VMs and suspend the
    subscription. The stream of mining alerts the campaign adds on ``stream_subscription_id``:
    deallocate each one's VM.
    """
    template = (Path(__file__).parent / "policy.toml").read_text(encoding="utf-8")
    return template.format(subscription_id=subscription_id, stream_subscription_id=stream_subscription_id,
                           mining_type=MINING_TYPE)


@dataclass(frozen=True)
class CampaignOptions:
    """How hard and how long; the defaults are ``make chaos``'s (about 4 to 5 minutes)."""

    kills: int = 20
    seed: int = 1
    max_seconds: float = 300.0
    """Hard bound on the whole campaign, start-up and figures included."""
    uptime: tuple[float, float] = (1.0, 8.0)
    """Seconds the host runs between being ready and its SIGKILL (uniform, seeded)."""
    lease_seconds: float = 20.0
    """The host's queue-message lease (Azure's is 10 minutes; shortened so the campaign can watch past it)."""
    function_timeout: str = "00:00:20"
    """host.json functionTimeout override: how long a ledger row stays held by a worker that died."""
    settle_seconds: float = 120.0
    """The longest the campaign waits after the last kill for the work to settle."""
    fault_every: float = 1.5
    webhook_every: float = 2.5
    poll_schedule: str = "*/10 * * * * *"
    generated_alerts: int = 40
    generated_customers: int = 8
    bump_hit_count: bool = True
    """Double the mining alert's hit count halfway: a new alert version must not act twice."""
    work_dir: Path | None = None
    """Where logs go (a temporary directory, removed afterwards, when None)."""


@dataclass
class CampaignReport:
    """The figures; ``failures`` names each one that is wrong."""

    kills: int = 0
    host_starts: int = 0
    seconds: float = 0.0
    settled: bool = False
    settle_seconds: float = 0.0
    faults: Counter[str] = field(default_factory=Counter)
    webhooks_raised: int = 0
    webhooks_delivered: int = 0
    webhooks_refused: int = 0
    """Delivery attempts the receiver answered 401 or 403: the registered key did not open it."""
    served: int = 0
    stored: int = 0
    missing: list[str] = field(default_factory=list)
    destructive_calls: dict[str, int] = field(default_factory=dict)
    expected_targets: list[str] = field(default_factory=list)
    rows_running: list[str] = field(default_factory=list)
    poison: dict[str, int] = field(default_factory=dict)
    secrets_checked: int = 0
    leaks: list[Leak] = field(default_factory=list)
    log_bytes: int = 0
    pending: list[str] = field(default_factory=list)
    """What had not settled when the time bound ran out."""

    def failures(self) -> list[str]:
        problems = []
        if self.webhooks_refused:
            problems.append(f"{self.webhooks_refused} webhook delivery attempt(s) refused with 401/403: the key in "
                            "Partner Center's registration does not open the receiver")
        if self.missing:
            problems.append(f"{len(self.missing)} served alert(s) not stored: {', '.join(self.missing[:5])}")
        for target in self.expected_targets:
            count = self.destructive_calls.get(target, 0)
            if count != 1:
                problems.append(f"{count} successful destructive calls on {target} (must be exactly 1)")
        for target, count in self.destructive_calls.items():
            if target not in self.expected_targets:
                problems.append(f"{count} destructive call(s) on {target}, which the policy does not contain")
        if self.rows_running:
            problems.append(f"{len(self.rows_running)} ledger row(s) left running: {', '.join(self.rows_running[:5])}")
        if self.leaks:
            problems.append(f"{len(self.leaks)} secret(s) found in the logs: "
                            + "; ".join(leak.describe() for leak in self.leaks[:5]))
        if self.secrets_checked == 0:
            problems.append("no secrets were collected to look for: the leak check proved nothing")
        if not self.settled:
            problems.append("the work did not settle within the time bound"
                            + (f": {'; '.join(self.pending)}" if self.pending else ""))
        return problems

    def render(self) -> str:
        faults = ", ".join(f"{label} x{count}" for label, count in sorted(self.faults.items())) or "none"
        lines = [
            "Fault campaign figures",
            f"  host kills (SIGKILL)          {self.kills}  (host started {self.host_starts} times)",
            f"  faults injected               {sum(self.faults.values())}: {faults}",
            f"  signed webhooks               {self.webhooks_raised} raised, {self.webhooks_delivered} acknowledged, "
            f"{self.webhooks_refused} attempts refused (401/403)",
            f"  alerts stored / served        {self.stored} / {self.served}  (missing {len(self.missing)})",
            "  successful destructive calls per target (must be 1):",
        ]
        targets = list(dict.fromkeys([*self.expected_targets, *self.destructive_calls]))
        lines += [f"    {self.destructive_calls.get(t, 0)}  {t}" for t in targets]
        lines += [
            f"  ledger rows left running      {len(self.rows_running)}",
            f"  poison messages               {sum(self.poison.values())}"
            + "".join(f"  {queue}: {count}" for queue, count in self.poison.items() if count),
            f"  secrets found in the logs     {len(self.leaks)}  ({self.secrets_checked} secrets looked for "
            f"in {self.log_bytes} bytes of host output)",
            f"  settled                       {'yes' if self.settled else 'NO'} ({self.settle_seconds:.0f}s after "
            f"the last kill); total {self.seconds:.0f}s",
        ]
        problems = self.failures()
        lines.append("RESULT: " + ("OK" if not problems else "FAILED"))
        lines += [f"  - {p}" for p in problems]
        return "\n".join(lines)


def destructive_calls(requests: list[Any]) -> dict[str, int]:
    """Successful (2xx) containment calls per target, from the sandbox's request log."""
    counts: Counter[str] = Counter()
    for request in requests:
        if not 200 <= request.status < 300:
            continue
        if request.service == "arm" and request.method == "POST":
            match = _ARM_STOP.match(request.path)
            if match:
                counts[f"ARM {match['target'].lower()}"] += 1
        elif request.service == "partner_center" and request.method == "PATCH":
            match = _PC_SUBSCRIPTION.match(request.path)
            body = _json_or_none(request.body)
            if match and isinstance(body, dict) and str(body.get("status", "")).lower() == "suspended":
                counts[f"Partner Center suspend {match['subscription'].lower()}"] += 1
        elif request.service == "partner_center" and request.method == "POST":
            match = _PC_CANCEL.match(request.path)
            if match:
                counts[f"Partner Center cancel {match['entitlement'].lower()}"] += 1
    return dict(counts)


def _json_or_none(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None


def served_alert_keys(sandbox: Any, now: datetime | None = None, *,
                      sources: tuple[str, ...] = ("partner_center", "graph")) -> set[str]:
    """The alert keys the stand-ins serve to the app's queries (open ones, and ones resolved in 30 days).

    Read from the stand-ins' own state, not through the app, so the check does not share the
    app's code.
    """
    from shared.alerts import parse_time

    now = now or datetime.now(UTC)

    def wanted(status: Any, resolved_on: Any) -> bool:
        status = str(status or "").lower()
        if status in ("active", "investigating"):
            return True
        if status != "resolved":
            return False
        when = parse_time(resolved_on)
        return when is None or (now - when).days < RESOLVED_WINDOW_DAYS

    keys: set[str] = set()
    pc = sandbox.services["partner_center"]
    with pc.lock:
        items = [dict(item) for item in pc.alerts]
        generated = pc.generated
        items += [generated.item(j) for j in range(generated.count)]
    if "partner_center" not in sources:
        items = []
    for item in items:
        fields = {k.lower(): v for k, v in item.items()}
        if wanted(fields.get("eventstatus"), fields.get("resolvedon")):
            keys.add(f"partner_center:{fields['eventid']}")
    graph = sandbox.services["graph"]
    with graph.lock:
        graph_items = [dict(item) for item in graph._alerts.values()] if "graph" in sources else []
    for item in graph_items:
        if wanted(item.get("status"), item.get("resolvedOnDateTime")):
            keys.add(f"graph:{item['id']}")
    return keys


class Campaign:
    """One campaign: owns Azurite, the sandbox and the host process; ``run`` returns the figures."""

    def __init__(self, options: CampaignOptions, *, out: TextIO | None = None) -> None:
        self.options = options
        self.out = out
        self.rng = random.Random(options.seed)  # noqa: S311 - a replayable campaign, not cryptography
        self.report = CampaignReport()
        self._started = 0.0
        self._wall_started = 0.0
        self._next_fault = 0.0
        self._next_webhook = 0.0
        self._deliveries: list[Any] = []
        self.streamed: list[str] = []
        self.stream_vms: list[str] = []
        self.pending: list[str] = []
        self.keys = FunctionKeys()
        """The host's function keys: handed to each host process in a key file, never on its command line."""
        self.webhook_key = self.keys.function_key("receive_webhook")
        """The receiver's own key, as Partner Center's registration carries it (``?code=``)."""

    def say(self, text: str) -> None:
        if self.out is not None:
            self.out.write(text + "\n")
            self.out.flush()

    def run(self) -> CampaignReport:
        with contextlib.ExitStack() as stack:
            if self.options.work_dir is None:
                work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="chaos-")))
            else:
                work = self.options.work_dir
                work.mkdir(parents=True, exist_ok=True)
            return self._run(work, stack)
        raise AssertionError("unreachable")  # pragma: no cover - the with block returns

    def _run(self, work: Path, stack: contextlib.ExitStack) -> CampaignReport:
        from devhost.azurite import free_port, start_azurite
        from sandbox import ids
        from sandbox.core import start_sandbox
        from sandbox.webhooks import Registration
        from shared.settings import load_settings

        options = self.options
        self._started = time.monotonic()
        self._wall_started = time.time()
        azurite = start_azurite()
        stack.callback(azurite.stop)
        scenario = json.loads(DEFAULT_SCENARIO.read_text(encoding="utf-8"))
        scenario.setdefault("partner_center", {})["generate"] = {
            "alerts": options.generated_alerts, "customers": options.generated_customers}
        group = f"/subscriptions/{ids.SUB_NORTHWIND_DEV}/resourceGroups/{STREAM_RESOURCE_GROUP}"
        self.stream_vms = [f"{group}/providers/Microsoft.Compute/virtualMachines/vm-chaos-{i:02d}"
                           for i in range(options.kills)]
        scenario.setdefault("arm", {}).setdefault("virtualMachines", []).extend(
            {"id": vm, "location": "westus", "vmSize": "Standard_NC6s_v3", "powerState": "running",
             "timeCreated": "{{now-1h}}"} for vm in self.stream_vms)
        sandbox = start_sandbox(scenario, state_dir=work / "sandbox")
        stack.callback(sandbox.stop)
        self.sandbox = sandbox
        policy = work / "policy.toml"
        policy.write_text(campaign_policy(ids.SUB_FABRIKAM_PROD, ids.SUB_NORTHWIND_DEV), encoding="utf-8")
        port = free_port()
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("FRAUD_RESPONDER_", "AzureFunctionsJobHost"))},
            **sandbox.app_settings(),
            "AzureWebJobsStorage": azurite.connection_string,
            "TABLE_NAME_PREFIX": "chaos" + uuid.uuid4().hex[:8],
            "POLICY_PATH": str(policy),
            **dict.fromkeys(schedule_settings(), NEVER),
            "POLL_SCHEDULE": options.poll_schedule,
            "ALERT_SOURCES": "partner_center,graph",
            "FRAUD_RESPONDER_LOCAL_SETTINGS": str(work / "no-local-settings.json"),
            "AzureFunctionsJobHost__functionTimeout": options.function_timeout,
            "LOG_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
        }
        self.settings = load_settings(env, local_settings=work / "no-local-settings.json")
        pc: Any = sandbox.services["partner_center"]
        with pc.lock:
            pc.registration = Registration(
                f"http://127.0.0.1:{port}/api/webhooks/partner-center?code={self.webhook_key}", [FRAUD_EVENT])
        keys_path = self.keys.save(work / "function-keys.json")  # owner-only; every incarnation loads it
        host = HostProcess(env, port=port, lease_seconds=options.lease_seconds, log_path=work / "host.log",
                           keys_path=keys_path)
        stack.callback(host.stop)
        self.say(f"chaos: seed {options.seed}, {options.kills} kills, bound {options.max_seconds:.0f}s; "
                 f"host on 127.0.0.1:{port}")

        settle_budget = options.settle_seconds + 15.0
        kill_deadline = self._started + max(0.0, options.max_seconds - settle_budget)
        bump_at = options.kills // 2 if options.bump_hit_count else -1
        while self.report.kills < options.kills and time.monotonic() < kill_deadline:
            self._start_host(host)
            uptime = self.rng.uniform(*options.uptime)
            stream_at = time.monotonic() + self.rng.uniform(0.0, uptime)
            self._drive(min(time.monotonic() + uptime, kill_deadline), stream_at=stream_at)
            host.kill()
            self.report.kills += 1
            moment = f"kill {self.report.kills} at {time.monotonic() - self._started:.1f}s"
            host.mark(f"chaos: SIGKILL ({moment})")
            self.say(f"chaos: {moment}")
            if self.report.kills == bump_at:
                self._double_hit_count(pc, ids.MINING_ALERT_EVENT_ID)
        # Faults stop; the host runs on past its message lease until the work settles.
        sandbox.clear_faults()
        last_kill = time.monotonic()
        self._start_host(host)
        deadline = min(last_kill + options.settle_seconds, self._started + options.max_seconds - 10.0)
        self.say(f"chaos: faults stopped; waiting for the work to settle (at most {deadline - last_kill:.0f}s)")
        self.report.settled = self._wait(self._settled, deadline, progress=self._progress)
        self.report.settle_seconds = time.monotonic() - last_kill
        host.stop(timeout=max(5.0, self._started + options.max_seconds - time.monotonic() - 5.0))
        self._figures(work, ids)
        self.report.seconds = time.monotonic() - self._started
        return self.report

    # -- the kill phase --------------------------------------------------------------------------

    def _start_host(self, host: HostProcess) -> None:
        host.start()
        self.report.host_starts += 1

    def _drive(self, until: float, *, stream_at: float | None = None) -> None:
        """Inject faults and raise webhooks until ``until`` (the poll timer runs on its own).

        At ``stream_at`` a new mining alert appears on the stream subscription (and its webhook is
        raised), so a containment is in flight while this host incarnation lives.
        """
        from sandbox import ids
        from sandbox.faults import Fault

        subscriptions = (ids.SUB_FABRIKAM_PROD, ids.SUB_FABRIKAM_PROD, ids.SUB_NORTHWIND_DEV, ids.SUB_TAILSPIN_LAB)
        pc: Any = self.sandbox.services["partner_center"]
        while (now := time.monotonic()) < until:
            if now >= self._next_fault:
                fault = random_fault(self.rng)
                self.sandbox.add_fault(Fault.from_dict(fault))
                self.report.faults[describe(fault)] += 1
                self._next_fault = now + self.options.fault_every
            if stream_at is not None and now >= stream_at:
                self._add_stream_alert(pc)
                self._deliveries.append(pc.raise_fraud_event(ids.SUB_NORTHWIND_DEV))
                self.report.webhooks_raised += 1
                stream_at = None
            if now >= self._next_webhook:
                self._deliveries.append(pc.raise_fraud_event(self.rng.choice(subscriptions)))
                self.report.webhooks_raised += 1
                self._next_webhook = now + self.options.webhook_every
            time.sleep(min(0.1, max(0.0, until - time.monotonic())))

    def _add_stream_alert(self, pc: Any) -> None:
        """A new Active crypto-mining alert on the stream subscription, about the next stream VM."""
        import copy

        from sandbox import ids

        vm = self.stream_vms[len(self.streamed)]
        name = vm.rsplit("/", 1)[1]
        with pc.lock:
            template = next(a for a in pc.alerts
                            if str(a.get("eventId", "")).lower() == ids.MINING_ALERT_EVENT_ID.lower())
            alert = copy.deepcopy(template)
            alert.update({
                "eventId": f"{ids.SUB_NORTHWIND_DEV}_{name}", "customerTenantId": ids.CUSTOMER_NORTHWIND,
                "customerFriendlyName": "Northwind Traders", "subscriptionId": ids.SUB_NORTHWIND_DEV,
                "subscriptionName": "Northwind Dev/Test", "entityId": name, "entityName": name, "entityUrl": vm,
                "resourceName": name, "resourceGroupName": STREAM_RESOURCE_GROUP, "hitCount": "3",
                "affectedResources": [{"azureResourceId": vm, "type": "Microsoft.Compute/virtualMachines"}],
            })
            pc.alerts.append(alert)
        self.streamed.append(vm)

    @staticmethod
    def _double_hit_count(pc: Any, event_id: str) -> None:
        with pc.lock:
            for item in pc.alerts:
                if str(item.get("eventId", "")).lower() == event_id.lower():
                    item["hitCount"] = str(2 * int(str(item.get("hitCount") or "1")))

    # -- settling --------------------------------------------------------------------------------

    @staticmethod
    def _wait(check: Callable[[], bool], deadline: float, *, progress: Callable[[], None] | None = None) -> bool:
        last = time.monotonic()
        while time.monotonic() < deadline:
            with contextlib.suppress(Exception):  # storage can be briefly busy; look again
                if check():
                    return True
            if progress is not None and time.monotonic() - last >= 15:
                progress()
                last = time.monotonic()
            time.sleep(1.0)
        return False

    def _progress(self) -> None:
        self.say(f"chaos: {time.monotonic() - self._started:.0f}s, waiting for: {'; '.join(self.pending) or '?'}")

    def _settled(self) -> bool:
        """Queues empty (invisible messages count), no row running, deliveries done, nothing missing."""
        from shared.names import RESPOND_QUEUE, SYNC_QUEUE
        from shared.storage.clients import queue_client

        pending = []
        for name in (SYNC_QUEUE, RESPOND_QUEUE):
            count = queue_client(self.settings.storage, name).get_queue_properties().approximate_message_count
            if count:
                pending.append(f"{count} message(s) in {name}")
        undelivered = sum(1 for delivery in self._deliveries if not delivery.done.is_set())
        if undelivered:
            pending.append(f"{undelivered} webhook delivery(ies) still retrying")
        running = self._rows_running()
        if running:
            pending.append(f"{len(running)} ledger row(s) running")
        missing = served_alert_keys(self.sandbox, sources=self.settings.alert_sources) - self._stored_keys()
        if missing:
            pending.append(f"{len(missing)} served alert(s) not stored yet")
        self.pending = pending
        return not pending

    def _rows_running(self) -> list[str]:
        from shared.names import LEDGER_TABLE
        from shared.storage.tables import TableStore

        rows = []
        for page in TableStore(self.settings).query(LEDGER_TABLE, "state eq 'running' or state eq 'planned'"):
            rows += [f"{e.get('action', '?')} {e.get('target_id', e['RowKey'])}" for e in page.entities]
        return rows

    def _stored_keys(self) -> set[str]:
        from shared.alerts import from_entity
        from shared.names import ALERTS_TABLE
        from shared.storage.tables import TableStore

        keys = set()
        for page in TableStore(self.settings).query(ALERTS_TABLE, "kind eq 'alert'"):
            keys |= {from_entity(entity).key for entity in page.entities}
        return keys

    # -- figures ---------------------------------------------------------------------------------

    def _figures(self, work: Path, ids: Any) -> None:
        from shared.names import RESPOND_QUEUE, SYNC_QUEUE, poison_queue
        from shared.storage.clients import queue_client

        report = self.report
        report.webhooks_delivered = sum(1 for d in self._deliveries if d.state == "completed")
        report.webhooks_refused = sum(1 for d in self._deliveries for a in list(d.attempts) if a.status in (401, 403))
        served, stored = served_alert_keys(self.sandbox, sources=self.settings.alert_sources), self._stored_keys()
        report.served, report.stored = len(served), len(served & stored)
        report.missing = sorted(served - stored)
        report.destructive_calls = destructive_calls(self.sandbox.requests())
        report.expected_targets = [f"ARM {ids.MINING_VM_1.lower()}", f"ARM {ids.MINING_VM_2.lower()}",
                                   f"Partner Center suspend {ids.PLAN_FABRIKAM.lower()}",
                                   *(f"ARM {vm.lower()}" for vm in self.streamed)]
        report.pending = list(self.pending)
        report.rows_running = self._rows_running()
        for name in (SYNC_QUEUE, RESPOND_QUEUE):
            client = queue_client(self.settings.storage, poison_queue(name))
            try:
                report.poison[poison_queue(name)] = int(client.get_queue_properties().approximate_message_count or 0)
            except Exception:  # no poison queue: nothing was poisoned
                report.poison[poison_queue(name)] = 0
        keys = [(self.webhook_key, "webhook function key"), (self.keys.master, "master key"),
                *((value, "host key") for value in self.keys.host.values())]
        found = issued_secrets(self.sandbox, extra=keys)
        logs = sorted(p for p in work.glob("*.log") if p.is_file())
        report.secrets_checked = len(found)
        report.log_bytes = sum(p.stat().st_size for p in logs)
        report.leaks = scan(logs, found)
        # The stand-ins' request log, for finding the cause of a wrong figure (no bodies, no headers).
        with (work / "sandbox-requests.jsonl").open("w", encoding="utf-8") as out:
            for request in self.sandbox.requests():
                out.write(json.dumps({"time": round(request.time - self._wall_started, 3), "service": request.service,
                                      "method": request.method, "path": request.path,
                                      "status": request.status}) + "\n")
