"""``python -m chaos.host``: the dev host as a process of its own, so a campaign can SIGKILL it.

Reads the app's settings from the environment (as the Functions host does), serves on
``--port`` and prints ``READY <base url>`` on stdout once every trigger listens. HTTP functions
are opened by the function keys in ``--keys`` (a key file the campaign wrote, owner-only, as
``FunctionKeys.save`` writes it): the keys never travel on a command line or through a log. It stops on
SIGTERM/SIGINT; a campaign ends it with SIGKILL instead, in the middle of whatever it was doing.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

READY = "READY"
REPO_ROOT = Path(__file__).resolve().parent.parent


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chaos.host", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True, help="HTTP port on 127.0.0.1")
    parser.add_argument("--lease-seconds", type=float, default=600.0,
                        help="how long a fetched queue message stays invisible while it runs (default 600)")
    parser.add_argument("--keys", type=Path, default=None,
                        help="function key file (FunctionKeys.save); default: random keys nobody else knows")
    args = parser.parse_args(argv)

    from devhost.host import DevHost
    from devhost.keys import FunctionKeys
    from shared.logs import configure_logging

    log_format = os.environ.get("LOG_FORMAT", "text").lower()  # as `python -m devhost run` reads it
    configure_logging(os.environ.get("LOG_LEVEL", "INFO").upper(),
                      fmt=log_format if log_format in ("text", "json") else "text", stream=sys.stderr)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    keys = FunctionKeys.load(args.keys) if args.keys is not None else None
    with DevHost(http_port=args.port, message_lease_seconds=args.lease_seconds, keys=keys) as host:
        sys.stdout.write(f"{READY} {host.base_url}\n")
        sys.stdout.flush()
        stop.wait()
    return 0



class HostProcess:
    """The parent's handle on one ``python -m chaos.host``: start, wait until ready, SIGKILL or stop.

    Output (stdout and stderr) is appended to ``log_path``: the campaign scans it for secrets.
    """

    def __init__(self, env: dict[str, str], *, port: int, lease_seconds: float, log_path: Path,
                 keys_path: Path | None = None) -> None:
        self.env = env
        self.port = port
        self.lease_seconds = lease_seconds
        self.log_path = log_path
        self.keys_path = keys_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 90.0) -> None:
        """Start the host and wait for its READY line (the previous incarnation must be gone)."""
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            keys = ["--keys", str(self.keys_path)] if self.keys_path is not None else []
            self.process = subprocess.Popen(
                [sys.executable, "-m", "chaos.host", "--port", str(self.port), "--lease-seconds",
                 str(self.lease_seconds), *keys],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=self.env, cwd=REPO_ROOT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.log_path.open("rb") as log:
                log.seek(offset)
                if any(line.startswith(READY.encode()) for line in log.read().splitlines()):
                    return
            if self.process.poll() is not None:
                raise RuntimeError(f"the host exited with code {self.process.returncode} before it was ready; "
                                   f"the end of {self.log_path.name}:\n{self._log_tail(offset)}")
            time.sleep(0.1)
        self.kill()
        raise TimeoutError(f"the host was not ready within {timeout:.0f}s; see {self.log_path.name}")

    def _log_tail(self, offset: int, lines: int = 20) -> str:
        """The last lines this incarnation wrote: the log's directory may be gone when the error is read."""
        with self.log_path.open("rb") as log:
            log.seek(offset)
            return "\n".join(log.read().decode("utf-8", "replace").splitlines()[-lines:])

    def kill(self) -> None:
        """SIGKILL: no handler runs, nothing is flushed or released, as when a worker is lost."""
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self, timeout: float = 40.0) -> None:
        """SIGTERM and wait (running functions finish); SIGKILL when it does not end in time."""
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def mark(self, text: str) -> None:
        """A line in the host's log from the campaign (where a kill fell, for reading the log later)."""
        with self.log_path.open("a", encoding="utf-8") as log:
            log.write(f"{text}\n")

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


if __name__ == "__main__":
    raise SystemExit(main())
