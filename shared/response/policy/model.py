"""The response policy's model: rules, matching, evaluation and the explanation of a decision.

Semantics are **first match**: rules are tried top to bottom and the first rule whose every
condition holds decides the whole plan, so a policy reads like a list of ``if ... elif ...``.
Three effective-mode rules are then applied on top of whatever the policy says (and explained):
a test alert gets only the reporting action (notify) marked as a test; a resolved alert keeps only
the read-only actions; a destructive action in enforce waits for approval unless
``ALLOW_AUTOMATIC_CANCELLATION`` is true. An alert that is not resolved and that no rule matches
still gets the reporting action (the built-in fallback), so no alert type is ever dropped.

Which action is read-only, destructive or reporting comes from the action catalogue
(``shared.response.catalogue``); reading the TOML file is ``shared.response.policy.loader``. Pure
(no I/O) and light to import.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from shared.alerts import SEVERITIES, STATUSES, Alert
from shared.detection.config import DEFAULT as DEFAULT_DETECTION
from shared.detection.config import DetectionConfig
from shared.response import catalogue
from shared.response.catalogue import ParamValue
from shared.sources import CATEGORY_NAMES

MODES: Final = ("enforce", "dry-run", "approve")
"""enforce = do it; dry-run = record what would be done; approve = wait for an operator."""

Mode = Literal["enforce", "dry-run", "approve"]

CATEGORIES: Final = CATEGORY_NAMES
"""The values of ``Alert.category``: the categories the registered sources declare (``shared.sources``)."""

CONFIDENCES: Final = ("low", "medium", "high")
MATCH_STATUSES: Final = (*STATUSES, "unknown")
_RANK_SEVERITY: Final = {name: i for i, name in enumerate(SEVERITIES)}
_RANK_CONFIDENCE: Final = {name: i for i, name in enumerate(CONFIDENCES)}

DEFAULT_STATUSES_TEXT: Final = "any status except resolved"

# --- the compiled policy --------------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    """One condition of a rule checked against one alert."""

    field: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"  {'yes' if self.ok else 'no '}  {self.field}: {self.detail}"


@dataclass(frozen=True)
class Match:
    """A rule's conditions; an empty tuple / None means the condition is not used."""

    sources: tuple[str, ...] = ()
    types: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    min_severity: str | None = None
    min_confidence: str | None = None
    is_test: bool | None = None
    customers: tuple[str, ...] = ()
    subscriptions: tuple[str, ...] = ()
    customer_tags: tuple[str, ...] = ()
    min_hit_count: int | None = None
    statuses: tuple[str, ...] | None = None
    """None = the default: any status except resolved."""

    @property
    def is_catch_all(self) -> bool:
        """True when only the status condition is used (so the rule matches every type)."""
        return self == Match(statuses=self.statuses)

    def statuses_matched(self) -> frozenset[str]:
        return frozenset(self.statuses) if self.statuses is not None else frozenset(MATCH_STATUSES) - {"resolved"}

    def check(self, alert: Alert, tags: frozenset[str]) -> list[Check]:
        """Every condition this rule uses, checked; the rule matches when all are ok."""
        checks: list[Check] = []
        status = alert.status or "unknown"
        if self.statuses is None:
            checks.append(Check("statuses", status != "resolved", f"{status} ({DEFAULT_STATUSES_TEXT}, the default)"))
        else:
            checks.append(_member("statuses", status, self.statuses))
        if self.sources:
            checks.append(_member("source", alert.source, self.sources))
        if self.types:
            hit = next((p for p in self.types if fnmatch.fnmatchcase(alert.type.lower(), p)), None)
            detail = f"{alert.type} matches {hit}" if hit else f"{alert.type} matches none of {_join(self.types)}"
            checks.append(Check("type", hit is not None, detail))
        if self.categories:
            checks.append(_member("category", alert.category, self.categories))
        if self.min_severity is not None:
            checks.append(_threshold("min_severity", alert.severity, self.min_severity, _RANK_SEVERITY))
        if self.min_confidence is not None:
            checks.append(_threshold("min_confidence", alert.confidence, self.min_confidence, _RANK_CONFIDENCE))
        if self.is_test is not None:
            checks.append(Check("is_test", alert.is_test == self.is_test,
                                f"alert is_test = {_bool(alert.is_test)}, rule wants {_bool(self.is_test)}"))
        if self.customers:
            customer = alert.customer_tenant_id.lower()
            checks.append(Check("customers", customer in self.customers,
                                f"{customer} {'is' if customer in self.customers else 'is not'} listed"))
        if self.subscriptions:
            sub = alert.subscription_id.lower()
            checks.append(Check("subscriptions", bool(sub) and sub in self.subscriptions,
                                f"{sub or '(no subscription)'} {'is' if sub in self.subscriptions else 'is not'} "
                                "listed"))
        if self.customer_tags:
            have = {t.casefold() for t in tags}
            common = [t for t in self.customer_tags if t in have]
            detail = (f"customer tagged {_join(common)}" if common else
                      f"customer tags {_join(sorted(have)) if have else '(none)'} include none of "
                      f"{_join(self.customer_tags)}")
            checks.append(Check("customer_tags", bool(common), detail))
        if self.min_hit_count is not None:
            if alert.hit_count is None:
                checks.append(Check("min_hit_count", False, "the alert reports no hit count"))
            else:
                ok = alert.hit_count >= self.min_hit_count
                sign = ">=" if ok else "<"
                checks.append(Check("min_hit_count", ok, f"{alert.hit_count} {sign} {self.min_hit_count}"))
        return checks


@dataclass(frozen=True)
class RuleAction:
    """An action as a rule names it: the mode asked for and its parameters (defaults filled in)."""

    action: str
    mode: Mode
    params: Mapping[str, ParamValue]

@dataclass(frozen=True)
class Rule:
    name: str
    index: int
    """1-based position in the file (first match wins)."""
    description: str
    match: Match
    actions: tuple[RuleAction, ...]


@dataclass(frozen=True)
class PlannedAction:
    """One action the responder should take, in the effective mode, with why."""

    action: str
    mode: Mode
    params: Mapping[str, ParamValue]
    reason: str
    requested_mode: Mode
    test: bool = False
    """True for a test alert's notification: the message must say it is a test."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "action": self.action, "mode": self.mode, "requested_mode": self.requested_mode,
            "params": {k: list(v) if isinstance(v, tuple) else v for k, v in self.params.items()},
            "test": self.test, "reason": self.reason,
        }


@dataclass(frozen=True)
class DroppedAction:
    """An action the matched rule lists that an effective-mode rule removed."""

    action: str
    requested_mode: Mode
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"action": self.action, "requested_mode": self.requested_mode, "reason": self.reason}


@dataclass(frozen=True)
class Decision:
    """What the policy decided for one alert: the matched rule, the plan, and the reasoning."""

    alert_key: str
    rule: str | None
    """Name of the matched rule; None when no rule matched (then ``fallback`` says what happened)."""
    rule_description: str
    fallback: bool
    actions: tuple[PlannedAction, ...]
    dropped: tuple[DroppedAction, ...]
    explanation: tuple[str, ...]
    policy_path: str
    policy_sha256: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "alert": self.alert_key, "policy": self.policy_path, "policy_sha256": self.policy_sha256,
            "rule": self.rule, "rule_description": self.rule_description, "fallback": self.fallback,
            "actions": [a.as_dict() for a in self.actions], "dropped": [d.as_dict() for d in self.dropped],
            "explanation": list(self.explanation),
        }


@dataclass(frozen=True)
class Policy:
    """A validated policy; ``evaluate`` is pure and cheap (no I/O)."""

    rules: tuple[Rule, ...]
    path: str = "<string>"
    """The file it came from, as shown to people (relative to the app root when inside it)."""
    sha256: str = ""
    warnings: tuple[str, ...] = field(default=())
    detection: DetectionConfig = DEFAULT_DETECTION
    """The ``[detection]`` table: the detectors' thresholds (defaults when the file has none)."""

    def evaluate(
        self, alert: Alert, *, tags: frozenset[str] = frozenset(), allow_automatic_cancellation: bool = False,
    ) -> Decision:
        """Plan the response to ``alert`` (``tags`` are its customer's tags from the contacts table)."""
        explanation = [_describe_alert(alert, tags)]
        matched: Rule | None = None
        for rule in self.rules:
            checks = rule.match.check(alert, tags)
            ok = all(c.ok for c in checks)
            explanation.append(f'rule "{rule.name}" (#{rule.index}): {"matched" if ok else "no match"}')
            explanation.extend(c.line() for c in checks)
            if ok:
                matched = rule
                break
        planned: list[PlannedAction] = []
        dropped: list[DroppedAction] = []
        fallback = False
        if matched is not None:
            if matched.index < len(self.rules):
                explanation.append(f'first match wins: the {len(self.rules) - matched.index} rule(s) after '
                                   f'"{matched.name}" were not tried')
            source = f'rule "{matched.name}"'
            planned = [PlannedAction(a.action, a.mode, a.params, source, a.mode) for a in matched.actions]
            if not planned:
                explanation.append(f'rule "{matched.name}" lists no actions: nothing to do')
        elif (alert.status or "unknown") != "resolved":
            fallback = True
            report = catalogue.reporter()
            planned = [PlannedAction(report.name, "enforce", report.defaults(),
                                     f"no rule matched: the built-in fallback runs {report.name} so no alert goes "
                                     "unseen", "enforce")]
            explanation.append(f"no rule matched: the built-in fallback runs {report.name} (enforce) so no alert goes "
                               "unseen")
        else:
            explanation.append("no rule matched and the alert is resolved: nothing to do")

        planned, dropped = _apply_effective_rules(alert, matched, planned, allow_automatic_cancellation, explanation)
        return Decision(
            alert_key=alert.key, rule=matched.name if matched else None,
            rule_description=matched.description if matched else "", fallback=fallback,
            actions=tuple(planned), dropped=tuple(dropped), explanation=tuple(explanation),
            policy_path=self.path, policy_sha256=self.sha256,
        )

    def summary(self) -> str:
        return f"{len(self.rules)} rule{'s' if len(self.rules) != 1 else ''}"


def _apply_effective_rules(
    alert: Alert, matched: Rule | None, planned: list[PlannedAction], allow_cancellation: bool,
    explanation: list[str],
) -> tuple[list[PlannedAction], list[DroppedAction]]:
    """The rules that hold whatever the policy says, in this order: test, resolved, destructive.

    Which action reports, which are read-only and which are destructive is the catalogue's to say.
    """
    dropped: list[DroppedAction] = []
    if alert.is_test:
        report = catalogue.reporter()
        rule_report = next((a for a in matched.actions if a.action == report.name), None) if matched else None
        why = f"test alert: only {report.name}, marked as a test, whatever the policy says"
        for p in planned:
            if p.action != report.name:
                dropped.append(DroppedAction(p.action, p.requested_mode, why))
        if rule_report is not None:
            told = PlannedAction(report.name, rule_report.mode, rule_report.params, f'{why} (mode and recipients '
                                 f'from rule "{matched.name if matched else ""}")', rule_report.mode, test=True)
        else:
            told = PlannedAction(report.name, "enforce", report.defaults(), f"{why} (default recipients)", "enforce",
                                 test=True)
        explanation.append(f"effective: {why}; {report.name} {told.mode}"
                           + (f", dropped {', '.join(d.action for d in dropped)}" if dropped else ""))
        return [told], dropped
    if alert.status == "resolved":
        read_only = catalogue.read_only()
        kept = [p for p in planned if p.action in read_only]
        why = f"the alert is resolved: only read-only actions ({', '.join(read_only)}) still run"
        for p in planned:
            if p.action not in read_only:
                dropped.append(DroppedAction(p.action, p.requested_mode, why))
        if dropped:
            explanation.append(f"effective: {why}; dropped {', '.join(d.action for d in dropped)}")
        planned = kept
    result = []
    for p in planned:
        if catalogue.spec(p.action).destructive and p.mode == "enforce" and not allow_cancellation:
            why = (f"{p.action} is destructive, so it waits for approval while ALLOW_AUTOMATIC_CANCELLATION is "
                   "false")
            explanation.append(f"effective: {p.action} enforce -> approve ({why})")
            result.append(PlannedAction(p.action, "approve", p.params, f"{p.reason}; {why}", p.requested_mode, p.test))
        else:
            result.append(p)
    return result, dropped

# --- helpers --------------------------------------------------------------------------------------


def _member(name: str, value: str, allowed: Sequence[str]) -> Check:
    ok = value in allowed
    return Check(name, ok, f"{value} {'is' if ok else 'is not'} one of {_join(allowed)}")


def _threshold(name: str, value: str, minimum: str, ranks: Mapping[str, int]) -> Check:
    """Unknown levels (legacy events carry no severity) count as the highest: respond, not ignore."""
    if value in ranks:
        ok = ranks[value] >= ranks[minimum]
        return Check(name, ok, f"{value} {'>=' if ok else '<'} {minimum}")
    top = max(ranks, key=lambda k: ranks[k])
    return Check(name, True, f"{value or 'unknown'} counts as {top} (unknown levels count as the highest) "
                             f">= {minimum}")


def _describe_alert(alert: Alert, tags: frozenset[str]) -> str:
    hits = "none" if alert.hit_count is None else str(alert.hit_count)
    return (f"alert {alert.key}: type {alert.type} (category {alert.category}), severity {alert.severity}, "
            f"confidence {alert.confidence}, status {alert.status}, test {_bool(alert.is_test)}, hit count {hits}, "
            f"customer tags {_join(sorted(tags)) if tags else '(none)'}")


def _join(values: Sequence[str]) -> str:
    return ", ".join(values)


def _bool(value: bool) -> str:
    return "true" if value else "false"
