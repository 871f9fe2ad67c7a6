"""The local stack's state directory (``.run/``) and the lock that says a stack is running from it.

``make run`` takes an exclusive ``flock`` on ``.run/stack.lock`` before it touches anything, and
holds it until it stops; the kernel releases it when the process dies, so a crashed stack never
leaves a stale lock. A second ``make run`` finds it taken and refuses (naming the first one) before
writing a file or starting a process, and the CLI uses it to tell a running stack's settings from
a stopped one's. POSIX only, like ``make run``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from shared.errors import FraudResponderError

STATE_DIR_NAME = ".run"
LOCK_FILE = "stack.lock"
CLI_SETTINGS_FILE = "local.settings.json"
"""The app settings `make run` writes for the CLI, beside its other state (``.run/local.settings.json``)."""


@dataclass(frozen=True)
class StackInfo:
    """What a running stack records in its lock file (no secrets: it is shown to the user)."""

    pid: int
    app_url: str
    azurite_ports: tuple[int, ...] = ()
    started_at: str = ""

    def describe(self) -> str:
        ports = f", Azurite on {', '.join(map(str, self.azurite_ports))}" if self.azurite_ports else ""
        since = f", started {self.started_at}" if self.started_at else ""
        return f"pid {self.pid}, app on {self.app_url}{ports}{since}"


class StackAlreadyRunning(FraudResponderError, RuntimeError):
    """Another stack holds the state directory's lock; ``info`` is what it recorded (None when unreadable)."""

    def __init__(self, state_dir: Path, info: StackInfo | None) -> None:
        self.state_dir = state_dir
        self.info = info
        running = info.describe() if info else "its details are unreadable"
        super().__init__(
            f"a local stack is already running from {state_dir} ({running}). Nothing was changed: use that one "
            "(the CLI finds its settings), or stop it with Ctrl-C in its terminal before starting another. "
            "To run a second stack at the same time, use another checkout and other ports, e.g. "
            "`make run PORT=7072 AZURITE_PORTS=10010,10011,10012`"
        )


def _parse(text: str) -> StackInfo | None:
    try:
        data: Any = json.loads(text)
        return StackInfo(pid=int(data["pid"]), app_url=str(data["app_url"]),
                         azurite_ports=tuple(int(p) for p in data.get("azurite_ports", ())),
                         started_at=str(data.get("started_at", "")))
    except (ValueError, KeyError, TypeError):
        return None


class StackLock:
    """The exclusive lock a running stack holds on ``<state_dir>/stack.lock``."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.path = state_dir / LOCK_FILE
        self._fd: int | None = None

    def acquire(self, info: StackInfo) -> None:
        """Take the lock and record ``info``; StackAlreadyRunning (changing nothing) when it is held."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)  # no O_TRUNC: the holder's record must survive
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StackAlreadyRunning(self.state_dir, running_stack(self.state_dir)) from None
        os.ftruncate(fd, 0)
        os.write(fd, (json.dumps(asdict(info)) + "\n").encode("utf-8"))
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing releases the flock
            self._fd = None


def running_stack(state_dir: Path) -> StackInfo | None:
    """What the stack running from ``state_dir`` recorded, or None when no stack holds its lock."""
    path = state_dir / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:  # held: a stack is running
            text = os.read(fd, 65536).decode("utf-8", "replace")
            return _parse(text) or StackInfo(pid=0, app_url="unknown")
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def find_checkout(start: Path, fallback: Path) -> Path:
    """The checkout of this app containing ``start`` (it has host.json and function_app.py), else ``fallback``."""
    for directory in (start, *start.parents):
        if (directory / "host.json").is_file() and (directory / "function_app.py").is_file():
            return directory
    return fallback
