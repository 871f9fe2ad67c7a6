"""`fraud-responder`: the operator CLI. Reads the same settings as the app.

Each command group lives in its own module exposing ``register(subparsers)``; ``main`` wires them.
Exit codes: 0 ok, 1 the operation failed, 2 usage.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

# Command-group modules, each with register(subparsers: argparse._SubParsersAction) -> None.
GROUPS: tuple[str, ...] = ("alerts", "poll", "policy", "actions", "contacts", "digest", "token", "webhook", "poison",
                          "identity")

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


class CommandFailed(Exception):
    """The operation failed; the message is one line that says what to do next."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fraud-responder", description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show the full traceback when something fails")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in GROUPS:
        importlib.import_module(f"shared.cli.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except CommandFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # an operation failed: one line that names it, traceback only on --debug
        if args.debug:
            raise
        first = (str(exc).strip().splitlines() or [""])[0]
        print(f"error: {type(exc).__name__}: {first} (run with --debug for details)", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    raise SystemExit(main())
