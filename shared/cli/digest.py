"""`fraud-responder digest [--send] [--json]`: today's digest, printed or e-mailed.

The same content as the daily e-mail (the daily_digest timer) and GET /api/manage/digest:
unresolved alerts by customer and type, actions waiting for approval, failures and poison
messages of the last 24 hours, token health. ``--send`` e-mails it now to SECURITY_CONTACTS
(whether or not the timer already sent one today).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from shared.cli import EXIT_OK, CommandFailed
from shared.cli.output import print_json


def register(subparsers: Any) -> None:
    digest = subparsers.add_parser(
        "digest", help="print today's digest (unresolved alerts, pending actions, failures, poison, tokens)",
        description="Print the daily digest; --send e-mails it to SECURITY_CONTACTS from NOTIFY_SENDER now.")
    digest.add_argument("--send", action="store_true",
                        help="also e-mail it to SECURITY_CONTACTS (Graph sendMail from NOTIFY_SENDER)")
    digest.add_argument("--json", action="store_true", help="print JSON (the documented, stable shape)")
    digest.set_defaults(handler=run_digest)


def run_digest(args: argparse.Namespace) -> int:
    from shared.cli.context import settings, store
    from shared.operations import OperationError
    from shared.operations.digest import build_digest, recipients, send_digest

    config = settings()
    if args.send:
        try:
            recipients(config)  # say what is missing before the reads
        except OperationError as exc:
            raise CommandFailed(str(exc)) from None
    print("reading alerts, the action ledger, poison queues and token health ...", file=sys.stderr)
    digest = build_digest(config, store(), read_quota=True)
    if args.json:
        print_json(digest.as_dict())
    else:
        sys.stdout.write(digest.as_text())
    if args.send:
        try:
            sent = send_digest(config, store(), digest=digest)
        except OperationError as exc:
            raise CommandFailed(str(exc)) from None
        print(f"digest e-mailed from {sent['from']} to {', '.join(sent['to'])}: {sent['subject']}", file=sys.stderr)
    return EXIT_OK
