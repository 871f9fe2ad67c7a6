"""`fraud-responder policy check|explain|actions`: validate the response policy, show why it decides
what it decides for a stored alert, and list the actions a policy may name (from the catalogue)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shared.cli import EXIT_FAILED, EXIT_OK, CommandFailed
from shared.cli.output import print_json, print_table

if TYPE_CHECKING:
    from shared.response.catalogue import ActionSpec


def register(subparsers: Any) -> None:
    policy = subparsers.add_parser("policy", help="validate the response policy and explain its decisions")
    sub = policy.add_subparsers(dest="policy_command", metavar="COMMAND", required=True)

    check = sub.add_parser("check", help="validate a policy file (exit 0 when it is usable, 1 with each error)")
    check.add_argument("file", nargs="?", type=Path, metavar="FILE", help="policy file (default: POLICY_PATH)")
    check.set_defaults(handler=check_policy)

    explain = sub.add_parser("explain", help="which rule matches a stored alert, which actions it takes, and why")
    explain.add_argument("alert_id", metavar="ALERT_ID", help="alert id, or source:id")
    explain.add_argument("--policy", type=Path, metavar="FILE", help="try this policy file instead of POLICY_PATH")
    explain.add_argument("--tag", action="append", default=[], metavar="TAG",
                         help="a tag of the alert's customer to evaluate with (repeatable)")
    explain.add_argument("--json", action="store_true", help="print the decision as JSON")
    explain.set_defaults(handler=explain_alert)

    actions = sub.add_parser("actions", help="the actions a policy may name: run order, kind and parameters")
    actions.add_argument("--json", action="store_true", help="print them as JSON")
    actions.set_defaults(handler=list_actions)


def list_actions(args: argparse.Namespace) -> int:
    """The catalogue as people writing a policy need it; no setting or storage needed."""
    from shared.response import catalogue

    specs = sorted(catalogue.specs(), key=lambda s: s.order)
    if args.json:
        print_json([{"action": s.name, "order": s.order, "summary": s.summary, "kind": _kind(s),
                     "params": {n: {"kind": p.kind, "default": list(p.default) if isinstance(p.default, tuple)
                                    else p.default, "choices": list(p.choices), "description": p.description}
                                for n, p in s.params.items()}} for s in specs])
        return EXIT_OK
    print_table(["action", "runs", "kind", "parameters (default)"],
                [[s.name, str(s.order), ", ".join(_kind(s)) or "-", _params(s.defaults())] for s in specs])
    return EXIT_OK


def _kind(spec: ActionSpec) -> list[str]:
    flags = (("read-only", spec.read_only), ("containment", spec.containment), ("destructive", spec.destructive),
             ("reversible", spec.reversible), ("reports", spec.reports))
    return [name for name, on in flags if on]


def _configured_policy_path() -> Path:
    """POLICY_PATH alone: checking a policy must not need storage or any other setting."""
    from shared.settings import SPECS, SettingsError, merged_values

    spec = next(s for s in SPECS if s.name == "POLICY_PATH")
    raw = merged_values().get(spec.name, spec.default or "")
    try:
        path: Path = spec.parse(raw)
    except ValueError as exc:
        raise CommandFailed(str(SettingsError(f"POLICY_PATH={raw!r} is invalid: {exc}"))) from None
    return path


def check_policy(args: argparse.Namespace) -> int:
    from shared.response.policy import PolicyError, load_policy

    path: Path = args.file or _configured_policy_path()
    try:
        policy = load_policy(path)
    except PolicyError as exc:
        for line in str(exc).splitlines():
            print(line, file=sys.stderr)
        return EXIT_FAILED
    print(f"{policy.path}: {policy.summary()}, OK")
    for warning in policy.warnings:
        print(f"{policy.path}: warning: {warning}")
    return EXIT_OK


def explain_alert(args: argparse.Namespace) -> int:
    from shared.alerts import from_entity
    from shared.cli.context import settings, store
    from shared.response.policy import PolicyError, load_policy
    from shared.views import find_alert

    config = settings()
    try:
        policy = load_policy(args.policy or config.policy_path)
    except PolicyError as exc:
        for line in str(exc).splitlines():
            print(line, file=sys.stderr)
        print("error: the policy is invalid: fix it (see `fraud-responder policy check`)", file=sys.stderr)
        return EXIT_FAILED
    entity = find_alert(store(), args.alert_id)
    if entity is None:
        raise CommandFailed(f"no alert {args.alert_id!r}: list them with `fraud-responder alerts list`")
    decision = policy.evaluate(from_entity(entity), tags=frozenset(args.tag),
                               allow_automatic_cancellation=config.allow_automatic_cancellation)
    if args.json:
        print_json(decision.as_dict())
        return EXIT_OK
    print(f"alert:  {decision.alert_key}")
    print(f"policy: {policy.path} ({policy.summary()}, sha256 {policy.sha256[:12]})")
    if decision.rule is not None:
        described = f": {decision.rule_description}" if decision.rule_description else ""
        print(f'rule:   "{decision.rule}"{described}')
    else:
        print("rule:   none matched" + (" (the built-in fallback)" if decision.fallback else ""))
    print()
    if decision.actions:
        print_table(["action", "mode", "parameters", "why"],
                    [[a.action, a.mode + (" (test)" if a.test else ""), _params(a.params), a.reason]
                     for a in decision.actions])
    else:
        print("no actions")
    if decision.dropped:
        print()
        print("dropped:")
        for d in decision.dropped:
            print(f"  {d.action} ({d.requested_mode}): {d.reason}")
    print()
    print("why:")
    for line in decision.explanation:
        print(f"  {line}")
    return EXIT_OK


def _params(params: Mapping[str, Any]) -> str:
    def show(value: Any) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, tuple):
            return ",".join(value)
        if isinstance(value, float):
            return f"{value:g}"
        return str(value)

    return " ".join(f"{k}={show(v)}" for k, v in params.items() if v != "") or "-"
