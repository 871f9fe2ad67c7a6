"""`fraud-responder alerts list|show`: what the responder has stored."""

from __future__ import annotations

import argparse
from datetime import datetime
from typing import Any

from shared.cli import EXIT_OK, CommandFailed
from shared.cli.context import store
from shared.cli.operator import add_retired_as
from shared.cli.output import print_json, print_table


def _since(text: str) -> datetime:
    """An ISO date/time, or a relative age such as 30m, 24h, 7d: the admin API's rules and bounds."""
    from shared.admin.api import parse_since
    from shared.admin.base import ApiError

    try:
        return parse_since(text)
    except ApiError as exc:
        raise argparse.ArgumentTypeError(exc.message) from None


def register(subparsers: Any) -> None:
    alerts = subparsers.add_parser("alerts", help="list and inspect stored alerts")
    sub = alerts.add_subparsers(dest="alerts_command", metavar="COMMAND", required=True)

    lst = sub.add_parser("list", help="list alerts, newest change first")
    lst.add_argument("--status", choices=["active", "investigating", "resolved"], help="only this status")
    lst.add_argument("--customer", metavar="TENANT_ID", help="only this customer tenant")
    lst.add_argument("--type", dest="alert_type", metavar="TYPE", help="only this alert type")
    lst.add_argument("--since", type=_since, metavar="WHEN", help="changed since (ISO 8601, or 30m / 24h / 7d)")
    lst.add_argument("--limit", type=int, default=200, help="at most this many (default 200)")
    lst.add_argument("--json", action="store_true", help="print JSON (the documented, stable shape)")
    lst.set_defaults(handler=list_alerts)

    show = sub.add_parser("show", help="one alert in full, with every decision taken on it")
    show.add_argument("alert_id", metavar="ID", help="alert id, or source:id")
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(handler=show_alert)

    quarantine = sub.add_parser(
        "quarantine", help="source records that could not be stored, with the reason",
        description="Records a sync could not store (they do not parse, or Table Storage refused them) are kept "
                    "with their raw payload (cut to fit) and the reason; the rest of the sync went on. A record "
                    "sent again replaces its entry. Most recent first.")
    quarantine.add_argument("--raw", action="store_true", help="include the raw payload (with --json)")
    quarantine.add_argument("--limit", type=int, default=200, help="at most this many (default 200)")
    quarantine.add_argument("--json", action="store_true", help="print JSON")
    quarantine.set_defaults(handler=list_quarantine)

    resolve = sub.add_parser(
        "resolve", help="resolve an alert at its source (fraud, legitimate or ignore) and record who",
        description="Write Resolved with the reason back to Partner Center (or Graph), record the operator on "
                    "the alert and in the action ledger (`actions undo` reopens it). Partner Center takes only "
                    "Fraud or Ignore: legitimate is sent as Ignore.")
    resolve.add_argument("alert_id", metavar="ID", help="alert id, or source:id")
    resolve.add_argument("--reason", required=True, choices=["fraud", "legitimate", "ignore"],
                         help="what the alert turned out to be")
    add_retired_as(resolve)
    resolve.add_argument("--json", action="store_true", help="print the result as JSON")
    resolve.set_defaults(handler=resolve_alert)


def list_alerts(args: argparse.Namespace) -> int:
    from shared.views import alert_json, query_alerts

    rows = [alert_json(e) for e in query_alerts(store(), status=args.status, customer=args.customer,
                                                alert_type=args.alert_type, since=args.since, limit=args.limit)]
    rows.sort(key=lambda a: a["changed_at"] or "", reverse=True)
    if args.json:
        print_json(rows)
        return EXIT_OK
    if not rows:
        print("no alerts match")
        return EXIT_OK
    print_table(
        ["id", "customer", "subscription", "type", "severity", "status", "resources", "changed"],
        [[a["id"], a["customer_name"] or a["customer_tenant_id"], a["subscription_id"],
          a["type"] + (" (test)" if a["is_test"] else ""), a["severity"], a["status"],
          len(a["affected_resources"]), (a["changed_at"] or "")[:19]] for a in rows],
    )
    return EXIT_OK


def list_quarantine(args: argparse.Namespace) -> int:
    from shared.intake.sync import quarantined
    from shared.names import ALERTS_TABLE

    rows = quarantined(store().table_client(ALERTS_TABLE), limit=args.limit)
    if args.json:
        print_json([row if args.raw else {k: v for k, v in row.items() if k != "raw"} for row in rows])
        return EXIT_OK
    if not rows:
        print("no quarantined records")
        return EXIT_OK
    print_table(["source", "id", "quarantined", "reason"],
                [[r["source"], (r["id"] or "(no id)")[:60], str(r["at"] or "")[:19], r["reason"][:200]] for r in rows])
    return EXIT_OK


def show_alert(args: argparse.Namespace) -> int:
    from shared.response import decisions
    from shared.views import alert_json, find_alert

    entity = find_alert(store(), args.alert_id)
    if entity is None:
        raise CommandFailed(f"no alert {args.alert_id!r}: list them with `fraud-responder alerts list`")
    doc = alert_json(entity, detail=True)
    doc["decisions"] = [d.as_json() for d in decisions.for_alert(store(), doc["key"])]
    doc["masked_reports"] = masked_reports(doc["key"])
    if args.json:
        print_json(doc)
        return EXIT_OK
    for name in ("id", "source", "customer_name", "customer_tenant_id", "subscription_id", "type", "category",
                 "severity", "confidence", "status", "hit_count", "detected_at", "first_observed_at",
                 "last_observed_at", "version", "changed_at"):
        print(f"{name.replace('_', ' '):>18}: {doc[name] if doc[name] is not None else ''}")
    if doc["is_test"]:
        print(f"{'test':>18}: yes (Microsoft test alert)")
    print(f"{'resources':>18}:")
    for r in doc["affected_resources"]:
        print(f"{'':>18}  {r['id']} ({r['type']})")
    if doc["resolved_reason"]:
        print(f"{'resolved':>18}: {doc['resolved_reason']} by {doc['resolved_by']} at {doc['resolved_at']}")
    if doc["description"]:
        print(f"{'description':>18}: {doc['description']}")
    print_decisions(doc["decisions"])
    if doc["masked_reports"]:
        print(f"{'reports':>18}: (personal data masked; in full only in the incident record)")
        for report in doc["masked_reports"]:
            print(f"{'':>18}  {report['action']}: {report['summary']}")
    return EXIT_OK


def masked_reports(alert_key: str) -> list[dict[str, Any]]:
    """The alert's succeeded actions that hold personal data (the Global Administrators' recovery methods):
    their masked summaries and public data; the full values stay in the ledger for the incident record."""
    from shared.response.ledger import PERSONAL_DATA, SUCCEEDED, Ledger, public_data

    return [{"action": e.action, "target": e.target.display or e.target.id, "summary": e.summary,
             "data": public_data(e.data)}
            for e in Ledger(store()).for_alert(alert_key) if e.state == SUCCEEDED and PERSONAL_DATA in e.data]


def print_decisions(records: list[dict[str, Any]]) -> None:
    """Every decision on an alert, oldest first, one line each (who, when, what, why)."""
    print(f"{'decisions':>18}:" + ("" if records else " none"))
    for d in records:
        on = f" {d['action']} {d['action_id']}" if d["action_id"] else ""
        why = f" ({d['reason']})" if d["reason"] else ""
        result = f": {d['outcome']}" if d["outcome"] else ""
        print(f"{'':>18}  {(d['at'] or '')[:19]} {d['decision']}{on} by {d['operator']}{why}{result}")


def resolve_alert(args: argparse.Namespace) -> int:
    import sys

    from shared.cli.context import settings
    from shared.cli.operator import checked_operator
    from shared.operations import OperationError
    from shared.operations.resolve import resolve

    operator = checked_operator(args.operator)
    print(f"resolving {args.alert_id} as {args.reason} at its source ...", file=sys.stderr)
    try:
        result = resolve(settings(), store(), args.alert_id, args.reason, operator)
    except OperationError as exc:
        raise CommandFailed(str(exc)) from None
    if args.json:
        print_json(result)
        return EXIT_OK
    alert = result["alert"]
    print(f"{alert['key']}: {alert['status']} ({alert['resolved_reason']}) by {alert['resolved_by']}: "
          f"{result['summary']}")
    if result["action_id"]:
        print(f"recorded as action {result['action_id']} (undo: fraud-responder actions undo {result['action_id']})")
    if result.get("verdict_actions"):
        print(f"fraud verdict: {len(result['verdict_actions'])} action(s) planned for the customer: "
              f"{', '.join(result['verdict_actions'])} (see `fraud-responder actions list --alert {alert['id']}`)")
    for deferred in result.get("verdict_deferred", []):
        print(f"fraud verdict: not planned yet ({deferred}); resolve again to plan it")
    return EXIT_OK
