"""`fraud-responder detect --once` and `detect --status`: run the detectors now, or see how they did."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from typing import Any

from shared.cli import EXIT_FAILED, EXIT_OK
from shared.cli.context import settings
from shared.cli.output import print_json, print_table


def register(subparsers: Any) -> None:
    detect = subparsers.add_parser(
        "detect", help="run the detectors now, or show their checkpoints and health",
        description="--once: every detector over every watched subscription (Partner Center's Azure plan "
                    "entitlements, cached), in this process, DETECT_CONCURRENCY at a time; alerts are stored and "
                    "their respond jobs sent as `poll --once` does. One line per detector: subscriptions judged, "
                    "events judged, findings, new and updated alerts, errors. Exit 1 when a subscription or a "
                    "detector failed (reasons on stderr). --status: each detector's latest outcome, the watch "
                    "list and the checkpoints.")
    mode = detect.add_mutually_exclusive_group(required=True)
    mode.add_argument("--once", action="store_true", help="run every detector once now and exit")
    mode.add_argument("--status", action="store_true", help="show detector health, the watch list and checkpoints")
    detect.add_argument("--refresh", action="store_true",
                        help="with --once: list the watched subscriptions from Partner Center again first")
    detect.add_argument("--json", action="store_true", help="print the result as JSON")
    detect.set_defaults(handler=detect_command)


def detect_command(args: argparse.Namespace) -> int:
    return detect_status(args) if args.status else detect_once(args)


def detect_once(args: argparse.Namespace) -> int:
    from shared.detection.jobs import DetectionRuntime, run_once

    runtime = DetectionRuntime.from_settings(settings())
    print("detecting ...", file=sys.stderr)
    run = run_once(runtime, refresh=args.refresh)
    if args.json:
        print_json(run.as_dict())
    else:
        rows = [[name, t.subscriptions, t.events, t.findings, t.new, t.updated, len(t.errors),
                 "failed" if t.errors else "ok"] for name, t in run.detectors.items()]
        print_table(["detector", "subscriptions", "events", "findings", "new", "updated", "errors", "status"], rows)
        print(f"{run.subjects} subject(s) read ({run.read_events} readings) in {run.duration_s:.2f}s; "
              f"{len(run.failed)} failed", file=sys.stderr)
        for name, tally in run.detectors.items():
            for error in tally.errors:
                print(f"{name}: {error}", file=sys.stderr)
        for subject, error in run.failed.items():
            print(f"{subject}: {error}", file=sys.stderr)
    return EXIT_OK if run.ok else EXIT_FAILED


def detect_status(args: argparse.Namespace) -> int:
    from shared.detection import state
    from shared.detection.jobs import DetectionRuntime
    from shared.detection.runner import detector_status
    from shared.names import DETECTION_TABLE

    runtime = DetectionRuntime.from_settings(settings())
    detectors = detector_status(runtime.store)
    watch = runtime.watchlist().status()
    checkpoints = [{"subject": e["PartitionKey"], "until": e.get("until"), "runs": e.get("runs", 0)}
                   for page in runtime.store.query(DETECTION_TABLE, "RowKey eq @row", {"row": state.CHECKPOINT_ROW},
                                                   select=["PartitionKey", "until", "runs"])
                   for e in page.entities]
    if args.json:
        print_json({"detectors": detectors, "watchlist": watch.__dict__, "checkpoints": checkpoints})
        return EXIT_OK
    print_table(["detector", "status", "at", "last ok", "error"],
                [[d["detector"], "ok" if d["ok"] else "failed", _when(d["at"]), _when(d["last_ok_at"]),
                  d["error"][:120]] for d in detectors])
    print(f"\nwatch list: {watch.count} subscription(s), refreshed {_when(watch.refreshed_at) or 'never'}"
          + (f"; last refresh failed: {watch.error}" if watch.error else ""))
    print()
    print_table(["subject", "judged until", "runs"], [[c["subject"], _when(c["until"]), c["runs"]]
                                                       for c in checkpoints])
    return EXIT_OK


def _when(value: Any) -> str:
    return value.isoformat(timespec="seconds") if isinstance(value, datetime) else str(value or "")
