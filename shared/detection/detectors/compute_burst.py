"""Compute burst: creations and scale-ups of compute, judged against the subscription's own history.

Why: crypto-mining and resale fraud start by creating compute (VMs, scale sets, container groups,
Batch pools, ML computes), usually from a principal the subscription has never seen, in sizes and
regions it has never used, many at once. The activity log shows that within minutes, a day before
any usage data. Each of four signals is weak alone (a new colleague, a first GPU VM, a new region,
a busy hour); several together are not:

* ``new_principal``: a creation by a principal never seen in the subscription (not the partner's);
* ``new_size``: a first-seen GPU (N-series) or high-core VM size;
* ``new_region``: a creation in a region the subscription has never used;
* ``count_over_threshold``: more instances created or added in one window than ``min_count`` and more than
  ``rate_factor`` times the subscription's usual busy window.

An alert needs ``min_signals`` of them (default 2) and is high confidence with
``high_confidence_signals`` (default 3); signals agree when they are about one creator. Once an
episode is open, further creations by its principals within ``episode_gap_minutes`` join it (the
alert grows), as do other creators' creations that raise an alert of their own.
Signals about principals and regions count only once the subscription has a history of them
(a subscription too new to have one is judged by sizes and counts).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from shared.alerts import AffectedResource
from shared.detection.base import (
    SUBSCRIPTION_SCOPE,
    ActivityEvent,
    Finding,
    Outcome,
    PartnerInput,
    Scope,
    SubscriptionInput,
    oldest_first,
)
from shared.detection.config import ComputeBurstConfig, section_for
from shared.detection.detectors._common import (
    as_int,
    body_value,
    bounded_append,
    day,
    get_ci,
    iso,
    new_episode,
    open_episode,
    parse_iso,
    plural,
    prune,
    remember,
    stale,
    usual,
    window,
)

NAME: Final = "compute_burst"
TYPE: Final = "ComputeBurst"

COMPUTE_OPERATIONS: Final[dict[str, str]] = {
    "microsoft.compute/virtualmachines/write": "Microsoft.Compute/virtualMachines",
    "microsoft.compute/virtualmachinescalesets/write": "Microsoft.Compute/virtualMachineScaleSets",
    "microsoft.containerinstance/containergroups/write": "Microsoft.ContainerInstance/containerGroups",
    "microsoft.batch/batchaccounts/pools/write": "Microsoft.Batch/batchAccounts/pools",
    "microsoft.machinelearningservices/workspaces/computes/write":
        "Microsoft.MachineLearningServices/workspaces/computes",
}
"""Write operations (lower case) that create or scale compute -> the resource type they act on."""

SIGNALS: Final = ("new_principal", "new_size", "new_region", "count_over_threshold")

# Bounds of the state (a busy subscription stays far below ~30,000 characters of JSON).
MAX_PRINCIPALS: Final = 150
MAX_REGIONS: Final = 80
MAX_SIZES: Final = 80
MAX_WINDOWS: Final = 200
MAX_CAPACITIES: Final = 60
MAX_EPISODE_RESOURCES: Final = 100
MAX_EPISODE_NAMES: Final = 20

_VCPUS = re.compile(r"^standard_[a-z]+(\d+)")


@dataclass(frozen=True)
class Creation:
    """One creation or scale-up, with what the rules need."""

    event: ActivityEvent
    resource_type: str
    principal: str
    caller: str
    region: str
    size: str
    units: int
    """Instances added (1 for a VM; the capacity or its increase for pools and scale sets)."""
    scale_up: bool
    gpu: bool
    high_core: bool


_TYPES_BY_PATH: Final = {t.lower(): t for t in COMPUTE_OPERATIONS.values()}


def resource_type_of(resource_id: str) -> str:
    """The resource type of a compute resource id (``.../providers/Microsoft.Compute/virtualMachines/x``)."""
    _, _, tail = resource_id.lower().partition("/providers/")
    parts = tail.split("/")
    # namespace/type/name[/childtype/childname]: the type path is every other segment after the namespace
    path = "/".join([parts[0], *parts[1::2]]) if parts and parts[0] else ""
    return _TYPES_BY_PATH.get(path, path)


def vcpus(size: str) -> int:
    """vCPUs of an Azure VM size from its name (``Standard_D64s_v5`` -> 64); 0 when unknown."""
    match = _VCPUS.match(size.lower())
    return int(match.group(1)) if match else 0


def is_gpu_size(size: str, prefixes: Sequence[str]) -> bool:
    return bool(size) and size.lower().startswith(tuple(prefixes))


def _size_and_capacity(event: ActivityEvent) -> tuple[str, int | None, bool]:
    """(size name, capacity if the resource has one, GPU requested by containers)."""
    props = event.properties
    op = event.operation
    if op.startswith("microsoft.compute/virtualmachines/"):
        return str(body_value(props, "properties", "hardwareProfile", "vmSize") or ""), 1, False
    if op.startswith("microsoft.compute/virtualmachinescalesets/"):
        return (str(body_value(props, "sku", "name") or ""),
                as_int(body_value(props, "sku", "capacity")), False)
    if op.startswith("microsoft.batch/"):
        size = str(body_value(props, "properties", "vmSize") or "")
        fixed = body_value(props, "properties", "scaleSettings", "fixedScale")
        capacity = None
        if isinstance(fixed, Mapping):
            capacity = ((as_int(get_ci(fixed, "targetDedicatedNodes")) or 0)
                        + (as_int(get_ci(fixed, "targetLowPriorityNodes")) or 0))
        return size, capacity, False
    if op.startswith("microsoft.machinelearningservices/"):
        size = str(body_value(props, "properties", "properties", "vmSize") or "")
        nodes = as_int(body_value(props, "properties", "properties", "scaleSettings", "maxNodeCount"))
        return size, nodes, False
    # container groups: no VM size; GPU when a container requests one
    containers = body_value(props, "properties", "containers")
    cpu = 0.0
    gpu_sku = ""
    if isinstance(containers, list):
        for container in containers:
            requests = get_ci(container, "properties", "resources", "requests")
            value = get_ci(requests, "cpu")
            if isinstance(value, int | float) and not isinstance(value, bool):
                cpu += float(value)
            gpu = get_ci(requests, "gpu")
            if isinstance(gpu, Mapping):
                gpu_sku = str(get_ci(gpu, "sku") or "gpu")
    size = f"containergroup-gpu-{gpu_sku.lower()}" if gpu_sku else (f"containergroup-{cpu:g}cpu" if cpu else "")
    return size, 1, bool(gpu_sku)


def principal_key(event: ActivityEvent) -> str:
    """Who did it: the object id when the log has it, else the caller as logged."""
    return (event.principal_id or event.caller).strip().lower()


def _status_code(event: ActivityEvent) -> str:
    return str(get_ci(event.properties, "statusCode") or "").strip().lower()


class ComputeBurst:
    """The compute-burst rules (pure: readings and state in, findings and state out)."""

    name: str = NAME
    scope: Scope = SUBSCRIPTION_SCOPE

    def detect(self, data: SubscriptionInput | PartnerInput, state: Mapping[str, Any],
               config: Any) -> Outcome:
        if not isinstance(data, SubscriptionInput):
            raise TypeError(f"{NAME} judges one subscription's activity, not {type(data).__name__}")
        cfg: ComputeBurstConfig = section_for(NAME, config)
        run = _Run(data, dict(state or {}), cfg)
        return run.detect()


class _Run:
    def __init__(self, data: SubscriptionInput, state: dict[str, Any], cfg: ComputeBurstConfig) -> None:
        self.data = data
        self.cfg = cfg
        self.sub = data.target.subscription_id.lower()
        self.principals: dict[str, int] = dict(state.get("principals", {}))
        self.regions: dict[str, int] = dict(state.get("regions", {}))
        self.sizes: dict[str, int] = dict(state.get("sizes", {}))
        self.windows: dict[str, int] = dict(state.get("windows", {}))
        self.capacity: dict[str, int] = dict(state.get("capacity", {}))
        episode = state.get("episode")
        self.episode: dict[str, Any] | None = _copy_episode(episode) if episode else None
        self.learned = bool(state.get("learned"))

    # --- reading ------------------------------------------------------------------------------

    def _partner(self, event: ActivityEvent) -> bool:
        tenant = self.cfg.partner_tenant_id
        return bool(tenant) and event.principal_tenant_id.lower() == tenant

    def _creation(self, event: ActivityEvent) -> Creation | None:
        resource_type = COMPUTE_OPERATIONS.get(event.operation.lower())
        if resource_type is None or event.status.lower() != "succeeded" or not event.resource_id:
            return None
        size, capacity, container_gpu = _size_and_capacity(event)
        size = size.lower()
        code = _status_code(event)
        rid = event.resource_id.lower()
        previous = self.capacity.get(self._relative(rid))
        if capacity is not None and resource_type != COMPUTE_OPERATIONS[
                "microsoft.compute/virtualmachines/write"] and not resource_type.endswith("containerGroups"):
            self.capacity[self._relative(rid)] = capacity
        gpu = container_gpu or is_gpu_size(size, self.cfg.gpu_size_prefixes)
        high_core = vcpus(size) >= self.cfg.high_core_vcpus
        if code in ("", "created"):
            scale_up = False
            units = capacity if capacity and capacity > 0 else 1
        else:  # an update: counts only when it raises capacity or moves to a first-seen big size
            raised = capacity is not None and previous is not None and capacity > previous
            resized = (gpu or high_core) and size not in self.sizes
            if not (raised or resized):
                return None
            scale_up = True
            units = capacity - previous if raised and capacity is not None and previous is not None else 1
        region = (event.location or str(body_value(event.properties, "location") or "")).lower().replace(" ", "")
        return Creation(event=event, resource_type=resource_type, principal=principal_key(event),
                        caller=event.caller, region=region, size=size, units=units, scale_up=scale_up,
                        gpu=gpu, high_core=high_core)

    def _relative(self, resource_id: str) -> str:
        prefix = f"/subscriptions/{self.sub}"
        return resource_id[len(prefix):] if resource_id.startswith(prefix) else resource_id

    def _absolute(self, relative: str) -> str:
        return f"/subscriptions/{self.sub}{relative}" if relative.startswith("/resourcegroups/") else relative

    # --- learning -----------------------------------------------------------------------------

    def _learn(self, events: Sequence[ActivityEvent], creations: Sequence[Creation]) -> None:
        for event in events:
            if event.status.lower() not in ("succeeded", "accepted", "started"):
                continue
            at = day(event.timestamp)
            remember(self.principals, principal_key(event), at)
            if event.location:
                remember(self.regions, event.location.lower().replace(" ", ""), at)
        for creation in creations:
            at = day(creation.event.timestamp)
            remember(self.regions, creation.region, at)
            remember(self.sizes, creation.size, at)
            key = str(window(creation.event.timestamp, self.cfg.window_minutes))
            self.windows[key] = self.windows.get(key, 0) + creation.units

    # --- judging ------------------------------------------------------------------------------

    def detect(self) -> Outcome:
        data, cfg = self.data, self.cfg
        if not self.learned:
            baseline = oldest_first(data.baseline)
            self._learn(baseline, [c for e in baseline if (c := self._creation(e))])
            self.learned = True
        events = tuple(sorted(data.events, key=lambda e: (e.timestamp, e.event_id)))
        creations = [c for e in events if (c := self._creation(e))]
        findings = self._judge(creations)
        self._learn(events, creations)
        if not findings and stale(self.episode, data.now, cfg.episode_gap_minutes):
            self.episode = None
        return Outcome(findings=tuple(findings), state=self._state())

    def _judge(self, creations: Sequence[Creation]) -> list[Finding]:
        cfg = self.cfg
        if not creations:
            return []
        know_principals = bool(self.principals)
        know_regions = bool(self.regions)
        per_event: dict[str, set[str]] = {}
        for c in creations:
            signals: set[str] = set()
            if (know_principals and c.principal and c.principal not in self.principals
                    and not self._partner(c.event)):
                signals.add("new_principal")
            if (c.gpu or c.high_core) and c.size not in self.sizes:
                signals.add("new_size")
            if know_regions and c.region and c.region not in self.regions:
                signals.add("new_region")
            per_event[c.event.event_id] = signals
        # the count signal: this batch's windows (plus what earlier runs counted in them)
        batch: Counter[str] = Counter()
        for c in creations:
            batch[str(window(c.event.timestamp, cfg.window_minutes))] += c.units
        history = [n for w, n in self.windows.items() if w not in batch]
        typical = usual(history)
        threshold = max(cfg.min_count, math.floor(cfg.rate_factor * typical) + 1)
        over = {w for w, n in batch.items() if n + self.windows.get(w, 0) >= threshold}
        for c in creations:
            if str(window(c.event.timestamp, cfg.window_minutes)) in over:
                per_event[c.event.event_id].add("count_over_threshold")
        # Signals agree when they are about the same creator: a newcomer's GPU VMs in new regions,
        # not Alice's first GPU VM and Bob's first VM in a new region in the same run. So a
        # colleague's ordinary VM in a busy window is not named either.
        by_principal: dict[str, set[str]] = {}
        for c in creations:
            by_principal.setdefault(c.principal, set()).update(per_event[c.event.event_id])
        alarming = {p for p, signals in by_principal.items() if len(signals) >= cfg.min_signals}
        rule = {"window_minutes": cfg.window_minutes, "threshold": threshold,
                "usual_per_window": typical, "rate_factor": cfg.rate_factor,
                "min_count": cfg.min_count, "max_in_window": max(
                    n + self.windows.get(w, 0) for w, n in batch.items()),
                "min_signals": cfg.min_signals, "high_confidence_signals": cfg.high_confidence_signals,
                "high_core_vcpus": cfg.high_core_vcpus}
        touched: list[dict[str, Any]] = []
        for c in creations:
            signals = per_event[c.event.event_id]
            at = c.event.timestamp
            episode = self.episode
            continues = open_episode(episode, at, cfg.episode_gap_minutes)
            linked = continues and episode is not None and c.principal in episode.get("principals", [])
            suspicious = c.principal in alarming and bool(signals)
            if not (linked or suspicious):
                continue
            if not continues or episode is None:
                episode = self.episode = new_episode(NAME, at)
            _add(episode, c, signals, self._relative(c.event.resource_id.lower()), rule)
            if not touched or touched[-1] is not episode:
                touched.append(episode)
        return [self._finding(e) for e in touched]

    def _finding(self, episode: Mapping[str, Any]) -> Finding:
        cfg = self.cfg
        signals = [s for s in SIGNALS if s in episode["signals"]]
        confidence = ("high" if len(signals) >= cfg.high_confidence_signals
                      else "medium" if len(signals) >= 2 else "low")
        severity = "high" if confidence == "high" else "medium"
        resources = tuple(AffectedResource(self._absolute(r), resource_type_of(r)) for r in episode["resources"])
        count = int(episode["count"])
        rule = episode["rule"]
        sizes = episode["sizes"]
        parts = []
        if "new_principal" in signals:
            parts.append(f"by {plural(len(episode['new_principals']), 'principal')} never seen in this "
                         f"subscription ({', '.join(episode['new_principals'])})")
        if "new_size" in signals:
            parts.append(f"in first-seen GPU or high-core sizes ({', '.join(episode['new_sizes'])})")
        if "new_region" in signals:
            parts.append(f"in first-seen regions ({', '.join(episode['new_regions'])})")
        if "count_over_threshold" in signals:
            parts.append(f"{rule['max_in_window']} instances in one {rule['window_minutes']}-minute window against "
                         f"a usual {rule['usual_per_window']:g} (threshold {rule['threshold']})")
        description = (f"{plural(count, 'compute resource')} created or scaled up "
                       + "; ".join(parts)
                       + f". Rule: at least {cfg.min_signals} of {len(SIGNALS)} signals; "
                       f"{len(signals)} agree ({', '.join(signals)}).")
        title = f"Compute burst: {plural(count, 'resource')} in {plural(len(episode['regions']), 'region')}"
        evidence = {
            "rule": "compute_burst: signals that agree >= min_signals",
            "signals": signals,
            "principals": list(episode["principals"]),
            "callers": list(episode["callers"]),
            "new_principals": list(episode["new_principals"]),
            "sizes": dict(sizes),
            "new_sizes": list(episode["new_sizes"]),
            "regions": list(episode["regions"]),
            "new_regions": list(episode["new_regions"]),
            "units": int(episode["units"]),
            "resources_not_listed": int(episode.get("dropped", 0)),
            **rule,
        }
        return Finding(
            detector=NAME, type=TYPE, customer_tenant_id=self.data.target.customer_tenant_id.lower(),
            subscription_id=self.sub, episode=str(episode["key"]), severity=severity,
            confidence=confidence, title=title, description=description,
            first_observed_at=parse_iso(episode["first"]), last_observed_at=parse_iso(episode["last"]),
            count=count, resources=resources, evidence=evidence)

    def _state(self) -> dict[str, Any]:
        now_day = day(self.data.now)
        oldest = now_day - self.cfg.memory_days
        oldest_window = window(self.data.now, self.cfg.window_minutes) - (
            self.cfg.memory_days * 1440 // self.cfg.window_minutes)
        windows = sorted(((int(w), n) for w, n in self.windows.items() if int(w) >= oldest_window),
                         reverse=True)[:MAX_WINDOWS]
        capacity = dict(sorted(self.capacity.items())[-MAX_CAPACITIES:])
        state: dict[str, Any] = {
            "learned": True,
            "principals": prune(self.principals, oldest, MAX_PRINCIPALS),
            "regions": prune(self.regions, oldest, MAX_REGIONS),
            "sizes": prune(self.sizes, oldest, MAX_SIZES),
            "windows": {str(w): n for w, n in sorted(windows)},
            "capacity": capacity,
        }
        if self.episode:
            state["episode"] = self.episode
        return state


def _copy_episode(episode: Mapping[str, Any]) -> dict[str, Any]:
    copied = dict(episode)
    for key in ("resources", "principals", "callers", "new_principals", "new_sizes",
                "regions", "new_regions", "signals"):
        copied[key] = list(episode.get(key, []))
    copied["sizes"] = dict(episode.get("sizes", {}))
    return copied


def _add(episode: dict[str, Any], c: Creation, signals: set[str], relative_id: str,
         rule: Mapping[str, Any]) -> None:
    """Grow the episode with one creation (bounded lists; counts always exact)."""
    for key in ("resources", "principals", "callers", "new_principals", "new_sizes",
                "regions", "new_regions", "signals"):
        episode.setdefault(key, [])
    episode.setdefault("sizes", {})
    episode["last"] = max(episode["last"], iso(c.event.timestamp))
    episode["count"] = int(episode["count"]) + 1
    episode["units"] = int(episode.get("units", 0)) + c.units
    if relative_id in episode["resources"]:
        episode["count"] -= 1  # the same resource again (a second write) is not a new one
    elif len(episode["resources"]) < MAX_EPISODE_RESOURCES:
        episode["resources"].append(relative_id)
    else:
        episode["dropped"] = int(episode.get("dropped", 0)) + 1
    bounded_append(episode["principals"], c.principal, MAX_EPISODE_NAMES)
    if c.caller:
        bounded_append(episode["callers"], c.caller, MAX_EPISODE_NAMES)
    if "new_principal" in signals:
        bounded_append(episode["new_principals"], c.caller or c.principal, MAX_EPISODE_NAMES)
    if c.size:
        sizes = episode["sizes"]
        if c.size in sizes or len(sizes) < MAX_EPISODE_NAMES:
            sizes[c.size] = int(sizes.get(c.size, 0)) + c.units
    if "new_size" in signals:
        bounded_append(episode["new_sizes"], c.size, MAX_EPISODE_NAMES)
    if c.region:
        bounded_append(episode["regions"], c.region, MAX_EPISODE_NAMES)
    if "new_region" in signals:
        bounded_append(episode["new_regions"], c.region, MAX_EPISODE_NAMES)
    for signal in SIGNALS:
        if signal in signals and signal not in episode["signals"]:
            episode["signals"].append(signal)
    if "count_over_threshold" in signals or "rule" not in episode:
        episode["rule"] = dict(rule)


DETECTOR: Final = ComputeBurst()
