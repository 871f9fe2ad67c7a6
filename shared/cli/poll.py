"""`fraud-responder poll --once`: one full sync of every configured source, with a summary."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from shared.cli import EXIT_FAILED, EXIT_OK
from shared.cli.context import settings
from shared.cli.output import print_json, print_table


def register(subparsers: Any) -> None:
    poll = subparsers.add_parser("poll", help="sync alerts from the sources now")
    poll.add_argument("--once", action="store_true", required=True,
                      help="run one full sync and exit (the timer does this on its schedule)")
    poll.add_argument("--source", choices=["partner_center", "graph"], action="append",
                      help="only this source (repeatable; default: ALERT_SOURCES)")
    poll.add_argument("--json", action="store_true", help="print the result as JSON")
    poll.set_defaults(handler=poll_once)


def poll_once(args: argparse.Namespace) -> int:
    from shared.intake.jobs import IntakeRuntime, run_sync
    from shared.intake.sync import SyncScope

    runtime = IntakeRuntime.from_settings(settings())
    sources = tuple(args.source) if args.source else None
    print(f"syncing {', '.join(sources or runtime.settings.alert_sources)} ...", file=sys.stderr)
    run = run_sync(runtime, SyncScope(), trigger="cli", sources=sources)
    if args.json:
        print_json(run.as_dict())
    else:
        print_table(
            ["source", "fetched", "new", "updated", "unchanged", "rejected", "enqueued", "seconds"],
            [[name, r.fetched, r.new, r.updated, r.unchanged, r.rejected, r.enqueued + r.redelivered,
              f"{r.duration_s:.2f}"] for name, r in run.results.items()],
        )
        for name, message in run.token_errors.items():
            print(f"{name}: {message}", file=sys.stderr)
    return EXIT_OK if run.ok else EXIT_FAILED
