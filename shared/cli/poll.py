"""`fraud-responder poll --once`: one full sync of every configured source, with a summary."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from shared.cli import EXIT_FAILED, EXIT_OK
from shared.cli.context import settings
from shared.cli.output import print_json, print_table
from shared.sources import POLLED_SOURCE_NAMES


def register(subparsers: Any) -> None:
    poll = subparsers.add_parser(
        "poll", help="sync alerts from the sources now",
        description="One sync of each source. A failing source does not stop the others: each gets its own row "
                    "(STATUS ok or failed, with the reason on stderr). Exit code 0 when every source synced, 1 when "
                    "any failed. Records that could not be stored are quarantined (QUARANTINED column; list them "
                    "with `fraud-responder alerts quarantine`); they do not change the exit code.")
    poll.add_argument("--once", action="store_true", required=True,
                      help="run one full sync and exit (the timer does this on its schedule)")
    poll.add_argument("--source", choices=POLLED_SOURCE_NAMES, action="append",
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
        failed = {**run.errors, **run.token_errors}
        names = list(dict.fromkeys([*run.results, *failed]))
        rows: list[list[Any]] = []
        for name in names:
            r = run.results.get(name)
            status = "failed" if name in failed else "ok"
            rows.append([name, *([r.fetched, r.new, r.updated, r.unchanged, r.rejected, r.quarantined,
                                  r.enqueued + r.redelivered, f"{r.duration_s:.2f}"] if r else ["-"] * 8), status])
        print_table(["source", "fetched", "new", "updated", "unchanged", "rejected", "quarantined", "enqueued",
                     "seconds", "status"], rows)
        for name, message in failed.items():
            print(f"{name}: {message}", file=sys.stderr)
        quarantined = sum(r.quarantined for r in run.results.values())
        if quarantined:
            print(f"{quarantined} record(s) could not be stored and were quarantined: "
                  "fraud-responder alerts quarantine", file=sys.stderr)
    return EXIT_OK if run.ok else EXIT_FAILED
