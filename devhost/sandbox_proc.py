"""Start the sandbox (``python -m sandbox serve``) and read where its stand-ins listen.

The sandbox's first stdout line is one JSON object: the base URL of each stand-in
(partner_center, entra, graph, arm, key_vault, cert_host), ``ca_cert`` (the PEM file of its CA)
and ``app_settings`` (environment variables pointing the app at it). Its later output is copied
to ours, prefixed, so a full pipe never stalls it.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

logger = logging.getLogger("devhost.sandbox")

REPO_ROOT = Path(__file__).resolve().parent.parent
SANDBOX_COMMAND = (sys.executable, "-m", "sandbox", "serve")
ENDPOINT_KEYS = ("partner_center", "entra", "graph", "arm", "key_vault", "cert_host")


class SandboxUnavailable(RuntimeError):
    """The sandbox could not be started; the message says why (the stack goes on without it)."""


@dataclass
class Sandbox:
    """A running sandbox process and what it announced."""

    process: subprocess.Popen[bytes]
    endpoints: dict[str, str]
    ca_cert: str
    app_settings: dict[str, str]
    _pump: threading.Thread | None = field(default=None, repr=False)

    def describe(self) -> list[str]:
        lines = [f"{key:<15} {url}" for key, url in self.endpoints.items()]
        if self.ca_cert:
            lines.append(f"{'ca_cert':<15} {self.ca_cert}")
        return lines

    def stop(self) -> None:
        _stop_process_group(self.process)
        if self._pump is not None:
            self._pump.join(timeout=5)


def _stop_process_group(process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)


def sandbox_available() -> bool:
    return (REPO_ROOT / "sandbox" / "__main__.py").is_file()


def _pump_output(stream: IO[bytes], sink: IO[str]) -> None:
    for raw in iter(stream.readline, b""):
        sink.write("[sandbox] " + raw.decode("utf-8", "replace"))
        sink.flush()


def start_sandbox(command: Sequence[str] = SANDBOX_COMMAND, *, env: Mapping[str, str] | None = None,
                  timeout: float = 60.0, output: IO[str] | None = None) -> Sandbox:
    """Start the sandbox in its own process group and wait for its announcement line."""
    if command == SANDBOX_COMMAND and not sandbox_available():
        raise SandboxUnavailable("sandbox/__main__.py does not exist yet (issue 3)")
    process = subprocess.Popen(
        list(command), stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, cwd=REPO_ROOT,
        env=dict(env) if env is not None else None, start_new_session=True,
    )
    assert process.stdout is not None
    lines: queue.Queue[bytes] = queue.Queue()
    reader = threading.Thread(target=lambda: lines.put(process.stdout.readline()),  # type: ignore[union-attr]
                              name="devhost-sandbox-first-line", daemon=True)
    reader.start()
    try:
        first = lines.get(timeout=timeout)
    except queue.Empty:
        _stop_process_group(process)
        raise SandboxUnavailable(f"the sandbox printed nothing within {timeout:.0f}s") from None
    try:
        announcement = _parse_announcement(first)
    except SandboxUnavailable:
        _stop_process_group(process)
        raise
    pump = threading.Thread(target=_pump_output, args=(process.stdout, output or sys.stdout),
                            name="devhost-sandbox-output", daemon=True)
    pump.start()
    return Sandbox(process, _pump=pump, **announcement)


def _parse_announcement(line: bytes) -> dict[str, Any]:
    if not line.strip():
        raise SandboxUnavailable("the sandbox exited before announcing its endpoints (see its output above)")
    try:
        document = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise SandboxUnavailable(f"the sandbox's first line is not JSON: {line[:200]!r}") from None
    if not isinstance(document, dict) or not isinstance(document.get("app_settings"), dict):
        raise SandboxUnavailable("the sandbox's first line lacks app_settings (an object of environment variables)")
    return {
        "endpoints": {key: str(document[key]) for key in ENDPOINT_KEYS if document.get(key)},
        "ca_cert": str(document.get("ca_cert") or ""),
        "app_settings": {str(k): str(v) for k, v in document["app_settings"].items()},
    }
