"""Reading a policy file: TOML parsing and validation, with errors that name the rule and the valid choices.

Every problem in the file is reported at once (``PolicyError.errors``, one line each) so
``fraud-responder policy check`` shows them all; action names and their parameters are checked
against the action catalogue (``shared.response.catalogue``); the ``[detection]`` table (the
detectors' thresholds, ``shared.detection.config``) is validated here too, its mistakes named by
dotted name (``detection.compute_burst.min_count``). ``get_policy`` caches the parsed
policy per file and picks up edits without a restart. ``docs/policy.md`` documents the format.
"""

from __future__ import annotations

import difflib
import hashlib
import re
import threading
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from shared.alerts import SEVERITIES
from shared.detection.config import DEFAULT as DEFAULT_DETECTION
from shared.detection.config import TABLE as DETECTION_TABLE
from shared.detection.config import DetectionConfig, DetectionConfigError
from shared.errors import FraudResponderError
from shared.formats import is_guid
from shared.response import catalogue
from shared.response.catalogue import ParamSpec, ParamValue
from shared.response.policy.model import (
    CATEGORIES,
    CONFIDENCES,
    MATCH_STATUSES,
    MODES,
    Match,
    Mode,
    Policy,
    Rule,
    RuleAction,
)
from shared.settings import APP_ROOT
from shared.sources import SOURCE_NAMES

MATCH_FIELDS: Final = (
    "source", "type", "category", "min_severity", "min_confidence", "is_test", "customers",
    "subscriptions", "customer_tags", "min_hit_count", "statuses",
)
RULE_FIELDS: Final = ("name", "description", "match", "actions")
TOP_LEVEL_FIELDS: Final = ("version", "rules", "detection")
POLICY_VERSION: Final = 1

_RULE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class PolicyError(FraudResponderError, ValueError):
    """The policy file cannot be used; ``errors`` holds one line per problem, each naming the rule."""

    def __init__(self, path: str, errors: Sequence[str]) -> None:
        self.path = path
        self.errors = tuple(errors)
        super().__init__("\n".join(f"{path}: {e}" for e in self.errors))


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
    detection = _detection(document, errors)
    if errors:
        raise PolicyError(path, errors)
    return Policy(rules=tuple(rules), path=path, sha256=hashlib.sha256(text.encode()).hexdigest(),
                  warnings=tuple(_warnings(rules)), detection=detection)


def _detection(document: Mapping[str, Any], errors: list[str]) -> DetectionConfig:
    """The ``[detection]`` table (the detectors' thresholds); its mistakes join the others by dotted name."""
    try:
        return DetectionConfig.from_mapping(document.get(DETECTION_TABLE))
    except DetectionConfigError as exc:
        errors.extend(exc.errors)
        return DEFAULT_DETECTION


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
    actions: list[RuleAction] = []
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
    values["sources"] = _choose_all(label, "source", sources, SOURCE_NAMES, errors)
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


def _action(label: str, position: int, raw: Mapping[str, Any], errors: list[str]) -> RuleAction | None:
    name = raw.get("action")
    if name is None:
        errors.append(f"{label}: action #{position} has no action name; valid actions: "
                      f"{', '.join(catalogue.names())}")
        return None
    found = catalogue.get(name) if isinstance(name, str) else None
    if found is None:
        errors.append(_unknown(label, "action", str(name), catalogue.names()))
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
    specs = found.params
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
    if ok and found.check_params is not None:
        problem = found.check_params(params)
        if problem:
            errors.append(f"{where}: {problem}")
            ok = False
    if not ok:
        return None
    checked_mode: Mode = "enforce" if mode == "enforce" else "dry-run" if mode == "dry-run" else "approve"
    return RuleAction(action=name, mode=checked_mode, params=params)


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
                        f"{catalogue.reporter().name} fallback")
    return warnings


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


