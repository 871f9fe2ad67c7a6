"""``python -m sandbox serve [--scenario FILE] [--port N]``: run every stand-in until SIGINT/SIGTERM.

The first stdout line is one JSON object with each stand-in's URL, the CA file and
``app_settings`` (the environment that points the app at the sandbox), so a parent process
(``make run``, tests) can read it and go.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from sandbox.core import start_sandbox

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_STATE_DIR = REPO_ROOT / ".run" / "sandbox"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the stand-ins on loopback until interrupted")
    serve.add_argument("--scenario", type=Path, default=None, help="scenario JSON (default: scenarios/default.json)")
    serve.add_argument("--port", type=int, default=None,
                       help="first port; the stand-ins take consecutive ports from it (default: free ports)")
    serve.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR,
                       help="where the CA and server certificate are written (default: .run/sandbox)")
    serve.add_argument("--log-level", default="WARNING", help="sandbox log level (default: WARNING)")
    raise_webhook = commands.add_parser("raise-webhook", help="deliver azure-fraud-event-detected to the "
                                        "registered webhook of a running sandbox")
    raise_webhook.add_argument("--subscription", required=True, help="Azure subscription id the event is about")
    raise_webhook.add_argument("--status", default="Active", help="EventStatus in the ResourceUri (default: Active)")
    raise_webhook.add_argument("--control", required=True,
                               help="the running sandbox's partner_center URL (printed by serve)")
    raise_webhook.add_argument("--ca", type=Path, default=DEFAULT_STATE_DIR / "ca.pem",
                               help="the sandbox CA file (default: .run/sandbox/ca.pem)")
    raise_webhook.add_argument("--log-level", default="WARNING", help=argparse.SUPPRESS)
    return parser


def serve(scenario: Path | None, port: int | None, state_dir: Path) -> int:
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    sandbox = start_sandbox(scenario, port=port, state_dir=state_dir)
    try:
        announcement: dict[str, object] = dict(sandbox.urls())
        announcement["ca_cert"] = str(sandbox.ca_cert_path)
        announcement["app_settings"] = sandbox.app_settings()
        sys.stdout.write(json.dumps(announcement) + "\n")
        sys.stdout.flush()
        while not stop.wait(0.5):
            pass
    finally:
        sandbox.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s",
                        stream=sys.stderr)
    if args.command == "serve":
        return serve(args.scenario, args.port, args.state_dir)
    if args.command == "raise-webhook":
        from sandbox.webhooks import raise_webhook_command

        return raise_webhook_command(control=args.control, subscription=args.subscription,
                                     event_status=args.status, ca_file=args.ca)
    return 2


if __name__ == "__main__":
    sys.exit(main())
