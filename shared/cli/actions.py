"""`fraud-responder actions list|approve|reject|undo`: the ledger, and operators' decisions on it.

Every decision is recorded with the identity the CLI acts with (``shared.cli.context.operator``):
the Entra ID identity signed in, or ``local:<OS user>`` against Azurite; never a typed name.
Exit codes: 0 done, 1 the action failed or cannot be done in its state, 2 usage.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any, NoReturn

from shared.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, CommandFailed
from shared.cli.operator import add_retired_as, checked_operator
from shared.cli.output import print_json, print_table

if TYPE_CHECKING:
    from shared.response.engine import Responder
    from shared.response.ledger import LedgerEntry


def register(subparsers: Any) -> None:
    actions = subparsers.add_parser("actions", help="list the action ledger; approve, reject or undo actions")
    sub = actions.add_subparsers(dest="actions_command", metavar="COMMAND", required=True)

    lst = sub.add_parser("list", help="ledger rows, oldest first")
    lst.add_argument("--pending", action="store_true", help="only actions awaiting approval")
    lst.add_argument("--alert", metavar="ID", help="only this alert's actions (alert id, or source:id)")
    lst.add_argument("--json", action="store_true", help="print JSON (the documented, stable shape)")
    lst.set_defaults(handler=list_actions)

    for name, verb in (("approve", "run an action awaiting approval now (or retry a failed one)"),
                       ("reject", "refuse an action awaiting approval"),
                       ("undo", "reverse a succeeded action (VMs started again, subscription reactivated)")):
        cmd = sub.add_parser(name, help=verb)
        bulk = name in ("approve", "reject")
        cmd.add_argument("action_id", metavar="ID", nargs="?" if bulk else None,
                         help="the action id from `actions list`")
        add_retired_as(cmd)
        cmd.add_argument("--json", action="store_true", help="print the resulting row as JSON")
        if name == "reject":
            cmd.add_argument("--reason", default="", metavar="TEXT", help="why (recorded)")
        if bulk:
            cmd.add_argument("--alert", metavar="ALERT_ID", help=f"with --all: every action of this alert awaiting "
                                                                 f"approval, each {name}d on its own row")
            cmd.add_argument("--all", action="store_true", dest="all_of_alert",
                             help=f"{name} all of --alert's waiting actions in one step")
        cmd.set_defaults(handler=decide, decision=name)

    expire = sub.add_parser("expire", help="expire actions that waited longer than APPROVAL_EXPIRY_HOURS now, and "
                                           "re-notify (the poll does it after every run)")
    expire.add_argument("--json", action="store_true", help="print what was expired and notified as JSON")
    expire.set_defaults(handler=expire_stale)


def _responder() -> Responder:
    from shared.cli.context import settings, store
    from shared.response.engine import Responder

    return Responder(settings(), store())


def _target(entry: LedgerEntry) -> str:
    return entry.target.display or entry.target.id


def list_actions(args: argparse.Namespace) -> int:
    rows = _responder().list_actions(pending_only=args.pending, alert=args.alert)
    if args.json:
        print_json([r.as_json() for r in rows])
        return EXIT_OK
    if not rows:
        print("no actions awaiting approval" if args.pending else "no actions match")
        return EXIT_OK
    print_table(["id", "alert", "action", "target", "mode", "state", "by", "result"],
                [[r.action_id, r.alert_key, r.action, _target(r), r.mode, r.state,
                  r.expired_by or r.undone_by or r.rejected_by or r.approved_by or r.actor,
                  (r.error or r.expired_reason or r.undo_summary or r.summary)[:80]] for r in rows])
    if args.alert:
        _print_decisions({r.alert_key for r in rows})
    return EXIT_OK


def _print_decisions(alert_keys: set[str]) -> None:
    """Below one alert's rows: the decisions taken on it, each its own record (a row shows only the latest)."""
    from shared.cli.alerts import print_decisions
    from shared.cli.context import store
    from shared.response import decisions

    for key in sorted(alert_keys):
        print()
        print(f"decisions on {key}:")
        print_decisions([d.as_json() for d in decisions.for_alert(store(), key)])


def _usage(message: str) -> NoReturn:
    print(f"usage: {message}", file=sys.stderr)
    raise SystemExit(EXIT_USAGE)


def _bulk_target(args: argparse.Namespace) -> str | None:
    """The alert of ``--alert ALERT_ID --all``, None for one ID; exit 2 for a mix or half of it."""
    alert, everything = getattr(args, "alert", None), getattr(args, "all_of_alert", False)
    if args.action_id and (alert or everything):
        _usage(f"actions {args.decision} takes either an action ID or --alert ALERT_ID --all, not both")
    if args.action_id:
        return None
    if not (alert and everything):
        _usage(f"actions {args.decision} ID, or actions {args.decision} --alert ALERT_ID --all (both flags: --all "
               "is what makes it every waiting action)")
    return str(alert)


def decide(args: argparse.Namespace) -> int:
    from shared.response.engine import OperatorError
    from shared.response.ledger import FAILED, UNDO_FAILED

    alert = _bulk_target(args) if args.decision in ("approve", "reject") else None
    operator = checked_operator(args.operator)
    responder = _responder()
    if alert is not None:
        return _decide_all(responder, args, alert, operator)
    try:
        if args.decision == "approve":
            entry = responder.approve(args.action_id, operator)
        elif args.decision == "reject":
            entry = responder.reject(args.action_id, operator, args.reason)
        else:
            entry = responder.undo(args.action_id, operator)
    except OperatorError as exc:
        raise CommandFailed(str(exc)) from None
    if args.json:
        print_json(entry.as_json())
    else:
        result = entry.error or entry.undo_summary or entry.summary or entry.reject_reason
        print(f"{entry.action_id} {entry.action} on {_target(entry)}: {entry.state} (by {operator})"
              + (f": {result}" if result else ""))
    return EXIT_FAILED if entry.state in (FAILED, UNDO_FAILED) else EXIT_OK


def _decide_all(responder: Responder, args: argparse.Namespace, alert: str, operator: str) -> int:
    """Every waiting action of one alert, each decided (and recorded) on its own; exit 1 if any did not take."""
    from shared.response.engine import OperatorError

    try:
        outcomes = responder.decide_all(alert, args.decision, operator, getattr(args, "reason", ""))
    except OperatorError as exc:
        raise CommandFailed(str(exc)) from None
    if args.json:
        print_json({"alert": alert, "decision": args.decision, "results": [o.as_json() for o in outcomes]})
    elif not outcomes:
        print(f"no action of alert {alert} awaits approval")
    else:
        for outcome in outcomes:
            entry = outcome.entry
            result = outcome.error or entry.error or entry.summary or entry.reject_reason
            print(f"{entry.action_id} {entry.action} on {_target(entry)}: {entry.state}"
                  + ("" if outcome.ok else " (NOT done)") + (f": {result}" if result else ""))
    return EXIT_OK if all(o.ok for o in outcomes) else EXIT_FAILED


def expire_stale(args: argparse.Namespace) -> int:
    from shared.cli.context import settings, store
    from shared.operations.approvals import expire_stale_approvals

    report = expire_stale_approvals(settings(), store())
    if args.json:
        print_json(report)
        return EXIT_OK if not report["errors"] else EXIT_FAILED
    print(f"{len(report['expired'])} action(s) expired ({report['note']}); "
          f"{len(report['notified'])} notification(s) sent")
    for row in report["expired"]:
        print(f"  {row['id']} {row['action']} on {row['target']['display'] or row['target']['id']} "
              f"(alert {row['alert']})")
    for error in report["errors"]:
        print(f"  error: {error}", file=sys.stderr)
    return EXIT_OK if not report["errors"] else EXIT_FAILED
