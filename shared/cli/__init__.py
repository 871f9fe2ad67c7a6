"""`fraud-responder`: the operator CLI. Reads the same settings as the app.

Each command group lives in its own module exposing ``register(subparsers)``; ``main`` wires them.
Exit codes: 0 ok, 1 the operation failed, 2 usage. Output cut short by its reader (``| head``) ends
quietly with 0. Settings: see ``shared.cli.context`` (a running ``make run`` stack is found by itself).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence

from shared.cli.errors import CommandFailed as CommandFailed

# Command-group modules, each with register(subparsers: argparse._SubParsersAction) -> None.
GROUPS: tuple[str, ...] = ("alerts", "poll", "policy", "actions", "contacts", "digest", "token", "webhook", "poison",
                          "identity", "posture", "incident", "detect")

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fraud-responder", description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show the full traceback when something fails")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in GROUPS:
        importlib.import_module(f"shared.cli.{name}").register(subparsers)
    return parser


def _reader_gone() -> int:
    """The reader of our output left (``fraud-responder ... | head``): stop quietly, as Unix tools do.

    Further writes (and the interpreter's final flush) go to /dev/null instead of raising again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    from shared.cli.context import use_discovered_settings

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except BrokenPipeError:
        return _reader_gone()
    note = use_discovered_settings()
    if note:
        print(note, file=sys.stderr)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        code = handler(args)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's last flush
        return code
    except BrokenPipeError:
        return _reader_gone()
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
