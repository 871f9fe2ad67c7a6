"""The response policy: a TOML file of rules that turn an alert into planned actions.

Semantics are **first match**: rules are tried top to bottom and the first rule whose every
condition holds decides the whole plan, so a policy reads like a list of ``if ... elif ...``.
Three effective-mode rules are then applied on top of whatever the policy says (and explained):
a test alert gets only a notification marked as a test; a resolved alert keeps only the read-only
actions (notify, investigate); ``cancel_azure_subscription`` in enforce waits for approval unless
``ALLOW_AUTOMATIC_CANCELLATION`` is true. An alert that is not resolved and that no rule matches
still gets a notification (the built-in fallback), so no alert type is ever dropped.

The module is pure (no I/O except reading the policy file) and light to import. ``docs/policy.md``
documents the format; the action catalogue below is the contract with ``shared/response``'s
action implementations.
"""

from __future__ import annotations

import difflib
import fnmatch
import hashlib
import re
import threading
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

from shared.alerts import SEVERITIES, SOURCES, STATUSES, Alert
from shared.errors import FraudResponderError
from shared.formats import is_guid
from shared.settings import APP_ROOT

if TYPE_CHECKING:
    from shared.health import PartStatus
    from shared.settings import Settings

# --- the catalogue --------------------------------------------------------------------------------

ACTIONS: Final = (
    "notify", "investigate", "stop_resources", "revoke_sessions", "rotate_credentials",
    "suspend_subscription", "cancel_azure_subscription", "update_status",
)
"""Every action a policy may name, in the order they are normally run."""

MODES: Final = ("enforce", "dry-run", "approve")
"""enforce = do it; dry-run = record what would be done; approve = wait for an operator."""

Mode = Literal["enforce", "dry-run", "approve"]

READ_ONLY_ACTIONS: Final = ("notify", "investigate")
"""Actions that change nothing in the customer's tenant: the only ones kept for a resolved alert."""

CATEGORIES: Final = ("crypto_mining", "anomalous_compute", "suspicious_operations", "service_health", "other")
"""The values of ``Alert.category`` (``shared.alerts.categorise``)."""

MATCH_FIELDS: Final = (
    "source", "type", "category", "min_severity", "min_confidence", "is_test", "customers",
    "subscriptions", "customer_tags", "min_hit_count", "statuses",
)
RULE_FIELDS: Final = ("name", "description", "match", "actions")
TOP_LEVEL_FIELDS: Final = ("version", "rules")
POLICY_VERSION: Final = 1

CONFIDENCES: Final = ("low", "medium", "high")
MATCH_STATUSES: Final = (*STATUSES, "unknown")
_RANK_SEVERITY: Final = {name: i for i, name in enumerate(SEVERITIES)}
_RANK_CONFIDENCE: Final = {name: i for i, name in enumerate(CONFIDENCES)}
_RULE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

ParamValue = bool | float | str | tuple[str, ...]


@dataclass(frozen=True)
class ParamSpec:
    """One action parameter: its type, default and (for text) the allowed values."""

    kind: Literal["bool", "number", "choice", "choice_list"]
    default: ParamValue
    description: str
    choices: tuple[str, ...] = ()

    def type_name(self) -> str:
        if self.kind == "bool":
            return "true or false"
        if self.kind == "number":
            return "a number of 0 or more"
        if self.kind == "choice":
            return "one of " + ", ".join(f'"{c}"' for c in self.choices)
        return "a non-empty list of " + ", ".join(f'"{c}"' for c in self.choices)


PARAMETERS: Final[Mapping[str, Mapping[str, ParamSpec]]] = {
    "notify": {
        "to": ParamSpec("choice_list", ("partner",), "who is told: the partner's security contacts, the customer's "
                        "contacts (from the contacts table), or both", ("partner", "customer")),
        "webhook": ParamSpec("bool", True, "also post to the Teams/Slack webhook when one is configured"),
        "throttle_hours": ParamSpec("number", 1.0, "at most one notification per subscription and alert type in "
                                    "this many hours; 0 = every time"),
    },
    "investigate": {},
    "stop_resources": {
        "operation": ParamSpec("choice", "deallocate", "deallocate (stops billing, keeps disks) or power_off "
                               "(keeps the allocation)", ("deallocate", "power_off")),
    },
    "revoke_sessions": {
        "include_global_admins": ParamSpec("bool", False, "also revoke the sessions of the customer's Global "
                                           "Administrators, not only the implicated users"),
    },
    "rotate_credentials": {
        "users": ParamSpec("bool", True, "reset the passwords of implicated users"),
        "applications": ParamSpec("bool", True, "rotate the secrets of implicated service principals"),
    },
    "suspend_subscription": {},
    "cancel_azure_subscription": {},
    "update_status": {
        "status": ParamSpec("choice", "investigating", "the status written back to Microsoft",
                            ("investigating", "resolved")),
        "reason": ParamSpec("choice", "", "with status = \"resolved\" only (and then required): why",
                            ("fraud", "ignore", "legitimate")),
    },
}
"""Known parameters per action; a policy giving any other parameter is an error."""

DEFAULT_STATUSES_TEXT: Final = "any status except resolved"


class PolicyError(FraudResponderError, ValueError):
    """The policy file cannot be used; ``errors`` holds one line per problem, each naming the rule."""

    def __init__(self, path: str, errors: Sequence[str]) -> None:
        self.path = path
        self.errors = tuple(errors)
        super().__init__("\n".join(f"{path}: {e}" for e in self.errors))


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
class ActionSpec:
    """An action as the policy names it: the mode asked for and its parameters (defaults filled in)."""

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
    actions: tuple[ActionSpec, ...]


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
            planned = [PlannedAction("notify", "enforce", _defaults("notify"),
                                     "no rule matched: the built-in fallback notifies so no alert goes unseen",
                                     "enforce")]
            explanation.append("no rule matched: the built-in fallback notifies (enforce) so no alert goes unseen")
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
    """The rules that hold whatever the policy says, in this order: test, resolved, cancellation."""
    dropped: list[DroppedAction] = []
    if alert.is_test:
        rule_notify = next((a for a in matched.actions if a.action == "notify"), None) if matched else None
        why = "test alert: only a notification marked as a test, whatever the policy says"
        for p in planned:
            if p.action != "notify":
                dropped.append(DroppedAction(p.action, p.requested_mode, why))
        if rule_notify is not None:
            notify = PlannedAction("notify", rule_notify.mode, rule_notify.params, f'{why} (mode and recipients '
                                   f'from rule "{matched.name if matched else ""}")', rule_notify.mode, test=True)
        else:
            notify = PlannedAction("notify", "enforce", _defaults("notify"), f"{why} (default recipients)", "enforce",
                                   test=True)
        explanation.append(f"effective: {why}; notify {notify.mode}"
                           + (f", dropped {', '.join(d.action for d in dropped)}" if dropped else ""))
        return [notify], dropped
    if alert.status == "resolved":
        kept = [p for p in planned if p.action in READ_ONLY_ACTIONS]
        why = "the alert is resolved: only read-only actions (notify, investigate) still run"
        for p in planned:
            if p.action not in READ_ONLY_ACTIONS:
                dropped.append(DroppedAction(p.action, p.requested_mode, why))
        if dropped:
            explanation.append(f"effective: {why}; dropped {', '.join(d.action for d in dropped)}")
        planned = kept
    result = []
    for p in planned:
        if p.action == "cancel_azure_subscription" and p.mode == "enforce" and not allow_cancellation:
            why = "cancellation is destructive, so it waits for approval while ALLOW_AUTOMATIC_CANCELLATION is false"
            explanation.append(f"effective: cancel_azure_subscription enforce -> approve ({why})")
            result.append(PlannedAction(p.action, "approve", p.params, f"{p.reason}; {why}", p.requested_mode, p.test))
        else:
            result.append(p)
    return result, dropped


# --- loading and validation -----------------------------------------------------------------------


def display_path(path: Path) -> str:
    """The path as people should see it: relative to the app root when inside it."""
    try:
        return path.resolve().relative_to(APP_ROOT).as_posix()
    except ValueError:
        return str(path)


def load_policy(path: Path) -> Policy:
    """Read and validate a policy file; raise PolicyError listing every problem found."""
    shown = display_path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise PolicyError(shown, ["file not found; set POLICY_PATH to a TOML policy, "
                                  "for example policy/default.toml"]) from None
    except OSError as exc:
        raise PolicyError(shown, [f"cannot read the file ({exc.strerror})"]) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise PolicyError(shown, ["the file is not UTF-8 text"]) from None
    return parse_policy(text, path=shown)


def parse_policy(text: str, *, path: str = "<string>") -> Policy:
    """Validate policy TOML text; ``path`` only labels messages."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(path, [f"TOML syntax error: {exc}"]) from None
    errors: list[str] = []
    rules = _rules(document, errors)
    if errors:
        raise PolicyError(path, errors)
    return Policy(rules=tuple(rules), path=path, sha256=hashlib.sha256(text.encode()).hexdigest(),
                  warnings=tuple(_warnings(rules)))


_cache: dict[Path, tuple[tuple[int, int], Policy]] = {}
_cache_lock = threading.Lock()


def get_policy(path: Path) -> Policy:
    """``load_policy`` cached per (file, mtime, size): handlers call this on every message, and an
    edited file is picked up without a restart. Errors are not cached."""
    resolved = path.resolve()
    try:
        stat = resolved.stat()
    except OSError:
        return load_policy(path)  # raises the PolicyError that names the problem
    stamp = (stat.st_mtime_ns, stat.st_size)
    with _cache_lock:
        hit = _cache.get(resolved)
    if hit is not None and hit[0] == stamp:
        return hit[1]
    policy = load_policy(path)
    with _cache_lock:
        _cache[resolved] = (stamp, policy)
    return policy


def _rules(document: Mapping[str, Any], errors: list[str]) -> list[Rule]:
    for key in document:
        if key not in TOP_LEVEL_FIELDS:
            errors.append(_unknown("top level", "field", key, TOP_LEVEL_FIELDS))
    version = document.get("version", POLICY_VERSION)
    if version != POLICY_VERSION or isinstance(version, bool):
        errors.append(f"top level: version must be {POLICY_VERSION}, not {version!r}")
    raw_rules = document.get("rules")
    if raw_rules is None:
        errors.append('top level: no rules; add at least one [[rules]] table with a name and actions')
        return []
    if not isinstance(raw_rules, list) or not all(isinstance(r, dict) for r in raw_rules):
        errors.append("top level: rules must be an array of tables ([[rules]])")
        return []
    if not raw_rules:
        errors.append('top level: no rules; add at least one [[rules]] table with a name and actions')
    rules: list[Rule] = []
    seen: set[str] = set()
    for index, raw in enumerate(raw_rules, start=1):
        rule = _rule(index, raw, errors)
        if rule is None:
            continue
        if rule.name in seen:
            errors.append(f'rule "{rule.name}" (#{index}): the name is already used by an earlier rule; '
                          "rule names must be unique")
        seen.add(rule.name)
        rules.append(rule)
    return rules


def _rule(index: int, raw: Mapping[str, Any], errors: list[str]) -> Rule | None:
    name = raw.get("name")
    if not isinstance(name, str) or not _RULE_NAME.match(name):
        label = f"rule #{index}"
        errors.append(f"{label}: name must be text of letters, digits, '-', '_' or '.' (at most 64), "
                      f"for example name = \"crypto-high\"; got {name!r}")
    else:
        label = f'rule "{name}"'
    before = len(errors)
    for key in raw:
        if key not in RULE_FIELDS:
            errors.append(_unknown(label, "field", key, RULE_FIELDS))
    description = raw.get("description", "")
    if not isinstance(description, str):
        errors.append(f"{label}: description must be text")
        description = ""
    raw_match = raw.get("match", {})
    if not isinstance(raw_match, dict):
        errors.append(f"{label}: match must be a table of conditions ([rules.match]); valid fields: "
                      f"{', '.join(MATCH_FIELDS)}")
        raw_match = {}
    match = _match(label, raw_match, errors)
    if "actions" not in raw:
        errors.append(f"{label}: no actions; list them as [[rules.actions]] tables "
                      "(actions = [] to match and do nothing)")
    raw_actions = raw.get("actions", [])
    actions: list[ActionSpec] = []
    if not isinstance(raw_actions, list) or not all(isinstance(a, dict) for a in raw_actions):
        errors.append(f"{label}: actions must be an array of tables, each with action and mode")
    else:
        for position, raw_action in enumerate(raw_actions, start=1):
            spec = _action(label, position, raw_action, errors)
            if spec is None:
                continue
            if any(a.action == spec.action for a in actions):
                errors.append(f'{label}: action "{spec.action}" is listed twice; list each action once')
            actions.append(spec)
    if len(errors) > before or not isinstance(name, str) or not _RULE_NAME.match(name):
        return None
    return Rule(name=name, index=index, description=description.strip(), match=match, actions=tuple(actions))


def _match(label: str, raw: Mapping[str, Any], errors: list[str]) -> Match:
    for key in raw:
        if key not in MATCH_FIELDS:
            errors.append(_unknown(label, "match field", key, MATCH_FIELDS))
    values: dict[str, Any] = {}
    sources = _text_list(label, "source", raw.get("source"), errors)
    values["sources"] = _choose_all(label, "source", sources, SOURCES, errors)
    types = _text_list(label, "type", raw.get("type"), errors)
    values["types"] = tuple(t.lower() for t in types)
    categories = _text_list(label, "category", raw.get("category"), errors)
    values["categories"] = _choose_all(label, "category", tuple(c.lower() for c in categories), CATEGORIES, errors)
    values["min_severity"] = _threshold_value(label, "min_severity", raw.get("min_severity"), SEVERITIES, errors)
    values["min_confidence"] = _threshold_value(label, "min_confidence", raw.get("min_confidence"), CONFIDENCES,
                                                errors)
    is_test = raw.get("is_test")
    if is_test is not None and not isinstance(is_test, bool):
        errors.append(f"{label}: is_test must be true or false, not {is_test!r}")
        is_test = None
    values["is_test"] = is_test
    for name in ("customers", "subscriptions"):
        ids = tuple(v.lower() for v in _text_list(label, name, raw.get(name), errors))
        for bad in [v for v in ids if not is_guid(v)]:
            errors.append(f"{label}: {name} must list tenant/subscription GUIDs; {bad!r} is not one "
                          "(example: \"aaaaaaaa-0001-4000-8000-000000000001\")")
        values[name] = ids
    values["customer_tags"] = tuple(t.casefold() for t in _text_list(label, "customer_tags",
                                                                     raw.get("customer_tags"), errors))
    hits = raw.get("min_hit_count")
    if hits is not None and (isinstance(hits, bool) or not isinstance(hits, int) or hits < 0):
        errors.append(f"{label}: min_hit_count must be a whole number of 0 or more, not {hits!r}")
        hits = None
    values["min_hit_count"] = hits
    if "statuses" in raw:
        statuses = _text_list(label, "statuses", raw["statuses"], errors)
        values["statuses"] = _choose_all(label, "statuses", tuple(s.lower() for s in statuses), MATCH_STATUSES,
                                         errors)
        if not values["statuses"] and not any("statuses" in e for e in errors):
            errors.append(f"{label}: statuses must not be empty; valid statuses: {', '.join(MATCH_STATUSES)}")
    return Match(**values)


def _action(label: str, position: int, raw: Mapping[str, Any], errors: list[str]) -> ActionSpec | None:
    name = raw.get("action")
    if name is None:
        errors.append(f"{label}: action #{position} has no action name; valid actions: {', '.join(ACTIONS)}")
        return None
    if not isinstance(name, str) or name not in ACTIONS:
        errors.append(_unknown(label, "action", str(name), ACTIONS))
        return None
    where = f'{label}: action "{name}"'
    ok = True
    mode = raw.get("mode")
    if mode is None:
        errors.append(f"{where}: no mode; valid modes: {', '.join(MODES)}")
        ok = False
    elif mode not in MODES:
        errors.append(_unknown(where, "mode", str(mode), MODES))
        ok = False
    specs = PARAMETERS[name]
    params: dict[str, ParamValue] = {k: s.default for k, s in specs.items()}
    for key, value in raw.items():
        if key in ("action", "mode"):
            continue
        if key not in specs:
            valid = ", ".join(specs) if specs else "none (it takes no parameters)"
            hint = _hint(key, specs)
            errors.append(f'{where}: unknown parameter "{key}"{hint}; valid parameters: {valid}')
            ok = False
            continue
        parsed = _param(specs[key], value)
        if parsed is None:
            errors.append(f"{where}: {key} must be {specs[key].type_name()}, not {value!r}")
            ok = False
            continue
        params[key] = parsed
    if name == "update_status" and ok:
        if params["status"] == "resolved" and not params["reason"]:
            errors.append(f'{where}: status = "resolved" needs a reason; valid reasons: fraud, ignore, legitimate')
            ok = False
        elif params["status"] != "resolved" and params["reason"]:
            errors.append(f'{where}: reason is only used with status = "resolved"; remove it or set that status')
            ok = False
    if not ok:
        return None
    checked_mode: Mode = "enforce" if mode == "enforce" else "dry-run" if mode == "dry-run" else "approve"
    return ActionSpec(action=name, mode=checked_mode, params=params)


def _param(spec: ParamSpec, value: Any) -> ParamValue | None:
    """The typed value, or None when it has the wrong type or an unknown choice."""
    if spec.kind == "bool":
        return value if isinstance(value, bool) else None
    if spec.kind == "number":
        ok = isinstance(value, int | float) and not isinstance(value, bool) and value >= 0
        return float(value) if ok else None
    if spec.kind == "choice":
        return value if isinstance(value, str) and value in spec.choices else None
    if isinstance(value, str):
        value = [value]
    if (not isinstance(value, list) or not value or len(set(value)) != len(value)
            or not all(isinstance(v, str) and v in spec.choices for v in value)):
        return None
    return tuple(value)


def _text_list(label: str, name: str, value: Any, errors: list[str]) -> tuple[str, ...]:
    """A condition given as one text or a list of texts."""
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        errors.append(f'{label}: {name} must be text or a list of texts, for example {name} = ["a", "b"]; '
                      f"got {value!r}")
        return ()
    return tuple(v.strip() for v in value)


def _choose_all(label: str, name: str, values: tuple[str, ...], allowed: Sequence[str],
                errors: list[str]) -> tuple[str, ...]:
    bad = [v for v in values if v not in allowed]
    for value in bad:
        errors.append(f'{label}: unknown {name} "{value}"{_hint(value, allowed)}; valid {_plural(name)}: '
                      f"{', '.join(allowed)}")
    return tuple(v for v in values if v in allowed)


def _threshold_value(label: str, name: str, value: Any, levels: Sequence[str], errors: list[str]) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or value.lower() not in levels:
        errors.append(f"{label}: {name} must be one of {', '.join(levels)} (lowest first), not {value!r}")
        return None
    return value.lower()


def _warnings(rules: Sequence[Rule]) -> list[str]:
    """Legal but probably unintended: rules an earlier catch-all hides, or no catch-all at all."""
    warnings = []
    for i, rule in enumerate(rules):
        hider = next((r for r in rules[:i] if r.match.is_catch_all
                      and r.match.statuses_matched() >= rule.match.statuses_matched()), None)
        if hider is not None:
            warnings.append(f'rule "{rule.name}" can never match: the earlier rule "{hider.name}" matches every '
                            "alert it could (first match wins); move it above or delete it")
    if not any(r.match.is_catch_all for r in rules):
        warnings.append("no catch-all rule (one without conditions): alerts no rule matches get the built-in "
                        "notify fallback")
    return warnings


def policy_health(settings: Settings) -> PartStatus:
    """The policy part of GET /api/health: ok with the rule count, or the first problem."""
    from shared.health import PartStatus

    try:
        policy = get_policy(settings.policy_path)
    except PolicyError as exc:
        more = f" (and {len(exc.errors) - 1} more; run `fraud-responder policy check`)" if len(exc.errors) > 1 else ""
        return PartStatus(False, f"{exc.path}: {exc.errors[0]}{more}")
    return PartStatus(True, f"{policy.summary()} from {policy.path}",
                      extra={"rules": len(policy.rules), "sha256": policy.sha256, "warnings": list(policy.warnings)})


# --- helpers --------------------------------------------------------------------------------------


def _defaults(action: str) -> dict[str, ParamValue]:
    return {k: s.default for k, s in PARAMETERS[action].items()}


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


def _unknown(label: str, what: str, value: str, valid: Sequence[str]) -> str:
    return f'{label}: unknown {what} "{value}"{_hint(value, valid)}; valid {_plural(what)}: {", ".join(valid)}'


def _hint(value: str, valid: Sequence[str] | Mapping[str, Any]) -> str:
    close = difflib.get_close_matches(value, list(valid), n=1, cutoff=0.6)
    return f' (did you mean "{close[0]}"?)' if close else ""


def _plural(what: str) -> str:
    if what.endswith("s"):
        return what
    if what.endswith("y"):
        return what[:-1] + "ies"
    return what + "s"


def _join(values: Sequence[str]) -> str:
    return ", ".join(values)


def _bool(value: bool) -> str:
    return "true" if value else "false"
