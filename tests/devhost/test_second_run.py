"""A second `make run` refuses before touching anything, and leaves the first stack working.

Both stacks run as real processes (`python -m devhost run`) with Azurite and the sandbox; the
second one is refused by the first one's lock on the state directory (or by a busy port) before
it writes a file or starts a process, so the first stack's CA, ports and CLI settings stay valid.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import queue
import signal
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from devhost.azurite import free_port
from tests.admin.auth_support import BOB
from tests.devhost.test_run import descendants, listening

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class RunningStack:
    process: subprocess.Popen[str]
    state_dir: Path
    http_port: int
    azurite_ports: list[int]
    output: list[str]


def command(state_dir: Path, http_port: int, azurite_ports: list[int], *, sandbox: bool) -> list[str]:
    return [sys.executable, "-m", "devhost", "run", "--host", "devhost", "--port", str(http_port),
            "--azurite-ports", ",".join(map(str, azurite_ports)), "--state-dir", str(state_dir),
            *([] if sandbox else ["--no-sandbox"])]


def detailed_health(stack: RunningStack) -> dict[str, Any]:
    """The health report with its parts: asked, checked at that moment, with a reader's token from the stack's Entra."""
    settings = json.loads((stack.state_dir / "local.settings.json").read_text())["Values"]
    verify = ssl.create_default_context(cafile=str(stack.state_dir / "sandbox" / "ca.pem"))
    token = httpx.post(f"{settings['ENTRA_AUTHORITY_HOST'].rstrip('/')}/_sandbox/entra/operator_tokens",
                       json={"username": BOB}, verify=verify, timeout=60).json()["access_token"]
    answer = httpx.get(f"http://127.0.0.1:{stack.http_port}/api/health", timeout=60,
                       headers={"Authorization": f"Bearer {token}"})
    return dict(answer.json())


def stack_env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "FRAUD_RESPONDER_LOCAL_SETTINGS": str(tmp_path / "none.json"),
            "POLL_SCHEDULE": "0 0 0 1 1 *", "DIGEST_SCHEDULE": "0 0 0 1 1 *", "DETECT_SCHEDULE": "0 0 0 1 1 *"}


@contextlib.contextmanager
def running_stack(tmp_path: Path, *, sandbox: bool, state_dir: Path | None = None) -> Iterator[RunningStack]:
    state_dir = state_dir or tmp_path / "state"
    http_port, azurite_ports = free_port(), [free_port() for _ in range(3)]
    process = subprocess.Popen(command(state_dir, http_port, azurite_ports, sandbox=sandbox), cwd=ROOT,
                               env=stack_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        for line in process.stdout or []:
            lines.put(line)

    threading.Thread(target=read, daemon=True).start()
    output: list[str] = []
    started: set[int] = set()
    try:
        deadline = time.monotonic() + 120
        while not any(line.startswith("Ready.") for line in output):
            assert process.poll() is None, "devhost exited early:\n" + "".join(output)
            try:
                output.append(lines.get(timeout=max(0.1, deadline - time.monotonic())))
            except queue.Empty:
                pytest.fail("devhost did not get ready:\n" + "".join(output))
        started = descendants(process.pid)
        yield RunningStack(process, state_dir, http_port, azurite_ports, output)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        for pid in started | descendants(process.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def fingerprint(directory: Path) -> dict[str, str]:
    """Every file under ``directory`` (except Azurite's data, which the running stack writes) and its hash."""
    return {str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.rglob("*")) if p.is_file() and "azurite" not in p.parts}


def test_a_second_run_from_the_same_checkout_is_refused_before_touching_anything(tmp_path: Path) -> None:
    with running_stack(tmp_path, sandbox=True) as first:
        before = fingerprint(first.state_dir)
        assert {"local.settings.json", "stack.lock", "sandbox/ca.pem"} <= set(before), before
        health_before = detailed_health(first)

        other_http, other_azurite = free_port(), [free_port() for _ in range(3)]
        started = time.monotonic()
        second = subprocess.run(command(first.state_dir, other_http, other_azurite, sandbox=True), cwd=ROOT,
                                env=stack_env(tmp_path), capture_output=True, text=True, timeout=120, check=False)
        assert second.returncode == 1
        assert "already running" in second.stderr and f"pid {first.process.pid}" in second.stderr, second.stderr
        assert f"http://localhost:{first.http_port}" in second.stderr
        assert "Azurite" not in second.stdout and "Sandbox" not in second.stdout  # nothing was started
        assert time.monotonic() - started < 30
        assert not any(listening(port) for port in [other_http, *other_azurite])

        assert fingerprint(first.state_dir) == before  # same CA, same CLI settings, same lock
        health_after = detailed_health(first)
        assert health_after["parts"]["key_vault"] == {**health_before["parts"]["key_vault"],
                                                      "elapsed_ms": health_after["parts"]["key_vault"]["elapsed_ms"]}
        assert health_after["parts"]["key_vault"]["ok"] is True
    # once the first stack is stopped the state directory is free again
    assert not listening(first.http_port)


def test_a_busy_port_is_refused_before_anything_is_written_or_started(tmp_path: Path) -> None:
    with running_stack(tmp_path, sandbox=False) as first:
        other_state = tmp_path / "other-state"
        other_azurite = [free_port() for _ in range(3)]
        second = subprocess.run(command(other_state, first.http_port, other_azurite, sandbox=False), cwd=ROOT,
                                env=stack_env(tmp_path), capture_output=True, text=True, timeout=120, check=False)
        assert second.returncode == 1
        assert f"port {first.http_port}" in second.stderr and "PORT=" in second.stderr, second.stderr
        assert not (other_state / "local.settings.json").exists()
        assert not (other_state / "azurite").exists()
        assert not any(listening(port) for port in other_azurite)

        busy_azurite = subprocess.run(command(other_state, free_port(), first.azurite_ports, sandbox=False), cwd=ROOT,
                                      env=stack_env(tmp_path), capture_output=True, text=True, timeout=120,
                                      check=False)
        assert busy_azurite.returncode == 1
        assert f"port {first.azurite_ports[0]}" in busy_azurite.stderr and "AZURITE_PORTS=" in busy_azurite.stderr
        assert httpx.get(f"http://127.0.0.1:{first.http_port}/admin/host/status", timeout=30).status_code == 200
