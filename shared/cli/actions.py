"""`fraud-responder actions list|approve|reject|undo`: the ledger, and operators' decisions on it.

Every decision is recorded with the identity the CLI acts with (``shared.cli.context.operator``):
the Entra ID identity signed in, or ``local:<OS user>`` against Azurite; never a typed name.
Exit codes: 0 done, 1 the action failed or cannot be done in its state, 2 usage.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from shared.cli import EXIT_FAILED, EXIT_OK, CommandFailed
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
        cmd.add_argument("action_id", metavar="ID", help="the action id from `actions list`")
        add_retired_as(cmd)
        cmd.add_argument("--json", action="store_true", help="print the resulting row as JSON")
        if name == "reject":
            cmd.add_argument("--reason", default="", metavar="TEXT", help="why (recorded)")
        cmd.set_defaults(handler=decide, decision=name)


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


def decide(args: argparse.Namespace) -> int:
    from shared.response.engine import OperatorError
    from shared.response.ledger import FAILED, UNDO_FAILED

    operator = checked_operator(args.operator)
    responder = _responder()
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
