"""`fraud-responder incident export ALERT_ID --format md|html|json`: the incident record of one alert.

Markdown for a ticket, HTML to forward (self-contained, printable), JSON for scripts (the documented
shape, docs/operating.md). Printed to stdout, or written to ``--out FILE``. The affected VMs' sizes
are read live through ARM for the cost estimate (best effort: ``--offline`` skips it, and a VM that
cannot be read is named in the record, not guessed).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from shared.cli import EXIT_OK, CommandFailed


def register(subparsers: Any) -> None:
    incident = subparsers.add_parser("incident", help="the incident record of an alert (to forward or file)")
    sub = incident.add_subparsers(dest="incident_command", metavar="COMMAND", required=True)
    export = sub.add_parser("export", help="detection, timeline, actions, decisions, cost estimate and Microsoft's "
                                           "one-time exception check of one alert")
    export.add_argument("alert_id", metavar="ALERT_ID", help="the alert id, or source:id")
    export.add_argument("--format", choices=("md", "html", "json"), default="md", help="output format (default md)")
    export.add_argument("--out", metavar="FILE", help="write to FILE instead of stdout")
    export.add_argument("--offline", action="store_true",
                        help="do not read VM sizes and compute quota through ARM (the cost estimate then names no "
                             "price, and quota hygiene is left out)")
    export.set_defaults(handler=export_incident)


def export_incident(args: argparse.Namespace) -> int:
    from shared.cli.context import settings, store
    from shared.operations import NotFound
    from shared.operations.incident import build_incident, live_vm_lookup, render
    from shared.views import find_alert

    tables = store()
    entity = find_alert(tables, args.alert_id.strip())
    if entity is None:
        raise CommandFailed(f"no alert {args.alert_id.strip()[:100]!r}; list them with `fraud-responder alerts list`")
    from shared.operations.quota import live_reader

    lookup = None if args.offline else live_vm_lookup(settings(), tables, str(entity.get("customer_tenant_id", "")))
    try:
        record = build_incident(tables, args.alert_id, vm_lookup=lookup,
                                quota_reader=None if args.offline else live_reader(settings()))
    except NotFound as exc:
        raise CommandFailed(str(exc)) from None
    text = render(record, args.format)
    if args.out:
        try:
            Path(args.out).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise CommandFailed(f"cannot write {args.out}: {exc.strerror or exc}") from None
        print(f"incident record of {record.alert['key']} written to {args.out} ({args.format})", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return EXIT_OK
