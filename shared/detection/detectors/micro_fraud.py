"""Micro-fraud: bursts of new customers or new subscriptions, and many small subscriptions that add up.

Why: resale fraud through a CSP (often through an indirect reseller, or one compromised partner
user) creates many customers and subscriptions quickly, each too small to notice alone. Partner
Center's audit records show every ``AddCustomer`` and ``CreateOrder`` within minutes.

Records are grouped by the indirect reseller on the record (or on the customer's watched
subscription), else by the partner user who acted. Per group:

* a **customer burst**: at least ``min_new_customers`` new customers in one ``window_minutes``
  window, and more than ``rate_factor`` times the group's usual busy window;
* a **subscription burst**: the same with ``min_new_subscriptions`` new subscriptions (order line items);
* **small ones that add up**: at least ``small_min_count`` new subscriptions of quantity at most
  ``small_max_quantity`` within ``small_window_hours``.

One alert per group and episode (subject ``reseller-<id>`` or ``user-<upn>``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Final

from shared.detection.base import (
    PARTNER_SCOPE,
    AuditRecord,
    Finding,
    Outcome,
    PartnerInput,
    Scope,
    SubscriptionInput,
    oldest_first,
)
from shared.detection.config import MicroFraudConfig, section_for
from shared.detection.detectors._common import (
    as_int,
    bounded_append,
    day,
    get_ci,
    iso,
    minute,
    new_episode,
    open_episode,
    parse_iso,
    usual,
)

NAME: Final = "micro_fraud"
TYPE: Final = "MicroFraud"

NEW_CUSTOMER_OPERATIONS: Final = frozenset({"addcustomer", "createcustomer"})
NEW_SUBSCRIPTION_OPERATIONS: Final = frozenset({"createorder", "addsubscription", "createsubscription"})
"""Operation types (lower case, underscores dropped: ``create_order`` = ``CreateOrder``)."""

MAX_GROUPS: Final = 40
MAX_HISTORY: Final = 12
MAX_SMALL_BUCKETS: Final = 48
MAX_EPISODES: Final = 20
MAX_NAMES: Final = 20


def _operation(record: AuditRecord) -> str:
    return record.operation_type.replace("_", "").strip().lower()


def _line_items(record: AuditRecord) -> list[int]:
    """Quantities of the order's line items (one item of quantity 1 when the record does not say)."""
    items = get_ci(record.new_value, "lineItems")
    if isinstance(items, list) and items:
        return [as_int(get_ci(item, "quantity")) or 1 for item in items]
    quantity = as_int(get_ci(record.new_value, "quantity"))
    return [quantity or 1]


class MicroFraud:
    """The micro-fraud rules (pure)."""

    name: str = NAME
    scope: Scope = PARTNER_SCOPE

    def detect(self, data: SubscriptionInput | PartnerInput, state: Mapping[str, Any],
               config: Any) -> Outcome:
        if not isinstance(data, PartnerInput):
            raise TypeError(f"{NAME} judges the partner's audit records, not {type(data).__name__}")
        cfg: MicroFraudConfig = section_for(NAME, config)
        return _Run(data, dict(state or {}), cfg).detect()


class _Run:
    def __init__(self, data: PartnerInput, state: dict[str, Any], cfg: MicroFraudConfig) -> None:
        self.data = data
        self.cfg = cfg
        self.groups: dict[str, dict[str, Any]] = {
            k: {**v, "hist_c": list(v.get("hist_c", [])), "hist_s": list(v.get("hist_s", [])),
                "cur_c": list(v.get("cur_c", [0, 0])), "cur_s": list(v.get("cur_s", [0, 0])),
                "small": dict(v.get("small", {}))}
            for k, v in state.get("groups", {}).items()}
        self.episodes: dict[str, dict[str, Any]] = {
            k: {**v, "customers": list(v.get("customers", [])), "rules": list(v.get("rules", []))}
            for k, v in state.get("episodes", {}).items()}
        self.learned = bool(state.get("learned"))
        self.resellers = {t.customer_tenant_id.lower(): t.reseller_id.lower()
                          for t in data.targets if t.reseller_id}

    def _group(self, record: AuditRecord) -> str:
        reseller = (record.reseller_id or self.resellers.get(record.customer_id.lower(), "")).strip().lower()
        if reseller:
            return f"reseller-{reseller}"
        user = record.user_principal.strip().lower()
        return f"user-{user}" if user else "user-unknown"

    def _count(self, group: dict[str, Any], kind: str, at_window: int, amount: int) -> int:
        """Add ``amount`` to the group's current window of ``kind`` (c or s); the window's total."""
        current = group[f"cur_{kind}"]
        if current[0] != at_window:
            if current[1] > 0:
                group[f"hist_{kind}"] = [*group[f"hist_{kind}"], current[1]][-MAX_HISTORY:]
            current[0], current[1] = at_window, 0
        current[1] += amount
        return int(current[1])

    def _threshold(self, group: Mapping[str, Any], kind: str, minimum: int) -> int:
        return max(minimum, math.floor(self.cfg.rate_factor * usual(group[f"hist_{kind}"])) + 1)

    def detect(self) -> Outcome:
        if not self.learned:
            for record in oldest_first(self.data.baseline, "operation_date"):
                self._see(record, judge=False)
            self.learned = True
        touched: list[str] = []
        for record in sorted(self.data.records, key=lambda r: (r.operation_date, r.record_id)):
            key = self._see(record, judge=True)
            if key and key not in touched:
                touched.append(key)
        findings = tuple(self._finding(k, self.episodes[k]) for k in touched)
        return Outcome(findings=findings, state=self._state())

    def _see(self, record: AuditRecord, *, judge: bool) -> str:
        """Count one record; when judging and a rule fires, add it to its group's episode (returns the group)."""
        if record.status.strip().lower() in ("failed", "failure"):
            return ""
        operation = _operation(record)
        new_customer = operation in NEW_CUSTOMER_OPERATIONS
        new_subscriptions = _line_items(record) if operation in NEW_SUBSCRIPTION_OPERATIONS else []
        if not new_customer and not new_subscriptions:
            return ""
        cfg = self.cfg
        key = self._group(record)
        group = self.groups.setdefault(key, {"hist_c": [], "hist_s": [], "cur_c": [0, 0], "cur_s": [0, 0],
                                             "small": {}, "day": 0})
        at = record.operation_date
        group["day"] = max(int(group.get("day", 0)), day(at))
        at_window = minute(at) // cfg.window_minutes
        fired: list[tuple[str, int, int]] = []  # (rule, count, threshold)
        if new_customer:
            threshold = self._threshold(group, "c", cfg.min_new_customers)
            count = self._count(group, "c", at_window, 1)
            if count >= threshold:
                fired.append(("customer_burst", count, threshold))
        if new_subscriptions:
            threshold = self._threshold(group, "s", cfg.min_new_subscriptions)
            count = self._count(group, "s", at_window, len(new_subscriptions))
            if count >= threshold:
                fired.append(("subscription_burst", count, threshold))
            small = sum(1 for q in new_subscriptions if q <= cfg.small_max_quantity)
            if small:
                hour = str(minute(at) // 60)
                buckets: dict[str, int] = group["small"]
                buckets[hour] = buckets.get(hour, 0) + small
                oldest_hour = minute(at) // 60 - cfg.small_window_hours + 1
                for old in [h for h in buckets if int(h) < oldest_hour]:
                    del buckets[old]
                if len(buckets) > MAX_SMALL_BUCKETS:
                    for old in sorted(buckets, key=int)[:len(buckets) - MAX_SMALL_BUCKETS]:
                        del buckets[old]
                total = sum(buckets.values())
                if total >= cfg.small_min_count:
                    fired.append(("small_subscriptions_add_up", total, cfg.small_min_count))
        if not judge or not fired:
            return ""
        episode = self.episodes.get(key)
        if not open_episode(episode, at, cfg.episode_gap_minutes) or episode is None:
            episode = self.episodes[key] = new_episode(NAME, at, subject=key)
        episode["last"] = max(str(episode["last"]), iso(at))
        # the episode's size: per rule, the records of every window that fired (a rolling total for
        # small subscriptions); the alert's count is the largest
        sizes: dict[str, dict[str, int]] = {r: dict(w) for r, w in episode.get("sizes", {}).items()}
        for rule, count, _ in fired:
            windows = sizes.setdefault(rule, {})
            slot = "rolling" if rule == "small_subscriptions_add_up" else str(at_window)
            windows[slot] = count
            if len(windows) > MAX_HISTORY:
                oldest = min(windows, key=lambda w: (w == "rolling", int(w) if w.isdigit() else 0))
                episode["carried"] = int(episode.get("carried", 0)) + windows.pop(oldest)
        episode["sizes"] = sizes
        episode["count"] = int(episode.get("carried", 0)) + max(sum(w.values()) for w in sizes.values())
        episode.setdefault("customers", [])
        episode.setdefault("rules", [])
        bounded_append(episode["customers"], record.customer_name or record.customer_id, MAX_NAMES)
        peaks = dict(episode.get("peaks", {}))
        for rule, count, threshold in fired:
            bounded_append(episode["rules"], rule, 3)
            peaks[rule] = [max(count, peaks.get(rule, [0, 0])[0]), threshold]
        episode["peaks"] = peaks
        episode["subscriptions"] = int(episode.get("subscriptions", 0)) + len(new_subscriptions)
        episode["new_customers"] = int(episode.get("new_customers", 0)) + int(new_customer)
        return key

    def _finding(self, key: str, episode: Mapping[str, Any]) -> Finding:
        cfg = self.cfg
        rules: list[str] = list(episode["rules"])
        peaks: Mapping[str, list[int]] = episode["peaks"]
        kind, _, who = key.partition("-")
        whom = f"indirect reseller {who}" if kind == "reseller" else f"partner user {who}"
        parts = []
        if "customer_burst" in rules:
            parts.append(f"{peaks['customer_burst'][0]} new customers in one {cfg.window_minutes}-minute window "
                         f"(threshold {peaks['customer_burst'][1]})")
        if "subscription_burst" in rules:
            parts.append(f"{peaks['subscription_burst'][0]} new subscriptions in one {cfg.window_minutes}-minute "
                         f"window (threshold {peaks['subscription_burst'][1]})")
        if "small_subscriptions_add_up" in rules:
            parts.append(f"{peaks['small_subscriptions_add_up'][0]} small new subscriptions (quantity <= "
                         f"{cfg.small_max_quantity}) within {cfg.small_window_hours} h (threshold "
                         f"{cfg.small_min_count})")
        severe = len(rules) > 1 or any(count >= 2 * threshold for count, threshold in peaks.values())
        customers = list(episode["customers"])
        return Finding(
            detector=NAME, type=TYPE, customer_tenant_id="", subscription_id="", subject_key=key,
            episode=str(episode["key"]), severity="high" if severe else "medium",
            confidence="high" if severe else "medium",
            title=f"Micro-fraud: {', '.join(r.replace('_', ' ') for r in rules)} by {whom}",
            description=f"{whom.capitalize()}: " + "; ".join(parts) + ". Rule: a burst well above the group's "
                        f"usual window (x{cfg.rate_factor:g}), or many small subscriptions adding up.",
            first_observed_at=parse_iso(episode["first"]), last_observed_at=parse_iso(episode["last"]),
            count=int(episode["count"]),
            evidence={"rule": "micro_fraud: bursts of new customers or subscriptions per reseller or user",
                      "group": key, "rules": rules, "peaks": {k: list(v) for k, v in peaks.items()},
                      "customers": customers, "new_customers": int(episode.get("new_customers", 0)),
                      "new_subscriptions": int(episode.get("subscriptions", 0)),
                      "window_minutes": cfg.window_minutes, "rate_factor": cfg.rate_factor,
                      "small_max_quantity": cfg.small_max_quantity,
                      "small_window_hours": cfg.small_window_hours})

    def _state(self) -> dict[str, Any]:
        now = self.data.now
        oldest = day(now) - self.cfg.memory_days
        groups = sorted(((k, v) for k, v in self.groups.items() if int(v.get("day", 0)) >= oldest),
                        key=lambda kv: (-int(kv[1].get("day", 0)), kv[0]))[:MAX_GROUPS]
        episodes = {k: v for k, v in self.episodes.items()
                    if open_episode(v, now, self.cfg.episode_gap_minutes)}
        kept = sorted(episodes.items(), key=lambda kv: (str(kv[1]["last"]), kv[0]), reverse=True)[:MAX_EPISODES]
        return {"learned": True, "groups": dict(sorted(groups)), "episodes": dict(sorted(kept))}


DETECTOR: Final = MicroFraud()
