"""``python -m devhost run``: the local stack (what ``make run`` calls). See docs/local-stack.md."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from devhost.stack import DEFAULT_AZURITE_PORTS, StackOptions, run


def _ports(text: str) -> tuple[int, int, int]:
    parts = text.split(",")
    if len(parts) != 3 or not all(p.strip().isdigit() for p in parts):
        raise argparse.ArgumentTypeError("expected three ports: blob,queue,table (example: 10000,10001,10002)")
    blob, queue, table = (int(p) for p in parts)
    return blob, queue, table


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m devhost", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run_cmd = commands.add_parser("run", help="start Azurite, the sandbox and the function app; Ctrl-C stops all")
    run_cmd.add_argument("--port", type=int, default=7071, help="HTTP port of the function app (default 7071)")
    run_cmd.add_argument("--host", choices=("auto", "func", "devhost"), default="auto",
                         help="run the app with func start (Core Tools), the in-repo dev host, or func when on PATH")
    run_cmd.add_argument("--no-sandbox", action="store_true", help="do not start the sandbox stand-ins")
    run_cmd.add_argument("--no-azurite", action="store_true", help="use the storage in AzureWebJobsStorage as is")
    run_cmd.add_argument("--azurite-ports", type=_ports, default=DEFAULT_AZURITE_PORTS, metavar="BLOB,QUEUE,TABLE",
                         help="Azurite ports (default 10000,10001,10002, which UseDevelopmentStorage=true expects)")
    run_cmd.add_argument("--azurite-location", type=Path, default=None, metavar="DIR",
                         help="where Azurite keeps its data (default STATE_DIR/azurite)")
    run_cmd.add_argument("--state-dir", type=Path, default=None, metavar="DIR",
                         help="the stack's state: its lock, the CLI's settings, the sandbox CA (default .run, or "
                              "the parent of --azurite-location); one running stack per state directory")
    run_cmd.add_argument("--functions", nargs="+", metavar="NAME", help="run only these functions")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from shared.logs import configure_logging

    level = os.environ.get("LOG_LEVEL", "INFO").upper()
    log_format = os.environ.get("LOG_FORMAT", "text").lower()
    # Quiet SDK loggers and the alert/customer/action context on every line (shared.logs).
    configure_logging(level if level in ("DEBUG", "INFO", "WARNING", "ERROR") else "INFO",
                      fmt=log_format if log_format in ("text", "json") else "text", stream=sys.stderr)
    options = StackOptions(
        port=args.port, sandbox=not args.no_sandbox, azurite=not args.no_azurite, azurite_ports=args.azurite_ports,
        azurite_location=args.azurite_location, state_dir=args.state_dir, host=args.host,
        functions=tuple(args.functions) if args.functions else None,
    )
    try:
        return run(options)
    except Exception as exc:
        logging.getLogger("devhost").debug("start-up failed", exc_info=True)
        print(f"devhost: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
