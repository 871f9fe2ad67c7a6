"""`python -m devhost run` starts the stack, serves the app, and leaves nothing running when stopped."""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import httpx
import pytest

from devhost.azurite import free_port
from devhost.sandbox_proc import SandboxUnavailable, start_sandbox

ROOT = Path(__file__).resolve().parents[2]


def descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (Linux /proc), whatever session or group it is in."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found: set[int] = set()
    pending = [pid]
    while pending:
        for child in children.get(pending.pop(), []):
            if child not in found:
                found.add(child)
                pending.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_run_serves_health_and_stops_everything_on_signal(tmp_path: Path, stop_signal: signal.Signals) -> None:
    http_port = free_port()
    azurite_ports = [free_port() for _ in range(3)]
    env = {**os.environ, "FRAUD_RESPONDER_LOCAL_SETTINGS": str(tmp_path / "none.json"),
           "POLL_SCHEDULE": "0 0 0 1 1 *"}
    process = subprocess.Popen(
        [sys.executable, "-m", "devhost", "run", "--no-sandbox", "--host", "devhost", "--port", str(http_port),
         "--azurite-ports", ",".join(map(str, azurite_ports)), "--azurite-location", str(tmp_path / "azurite")],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    output: list[str] = []
    started: set[int] = set()
    try:
        deadline = time.monotonic() + 90
        while not any(line.startswith("Ready.") for line in output):
            assert process.poll() is None, "devhost exited early:\n" + "".join(output)
            try:
                output.append(lines.get(timeout=max(0.1, deadline - time.monotonic())))
            except queue.Empty:
                pytest.fail("devhost did not get ready:\n" + "".join(output))
        started = descendants(process.pid)
        printed = "".join(output)
        assert f"queue http://127.0.0.1:{azurite_ports[1]}" in printed
        assert f"GET http://localhost:{http_port}/api/health" in printed
        assert "poll_alerts" in printed and "sync_alerts" in printed and "alerts-sync" in printed

        response = httpx.get(f"http://127.0.0.1:{http_port}/api/health", timeout=30)
        report = response.json()
        # Anonymous: up or down only. Without the sandbox Key Vault is not configured: failing, 503.
        assert set(report) == {"status"} and report["status"] in ("ok", "failing")
        assert response.status_code == (200 if report["status"] == "ok" else 503)
        assert "Webhook key" in printed and "receive_webhook" in printed

        assert started, "Azurite should run below the dev host"
        process.send_signal(stop_signal)
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:  # the test failed midway: stop the stack the polite way first
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            for pid in started | descendants(process.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        reader.join(timeout=10)
    assert not [pid for pid in started if alive(pid)]
    assert not any(listening(port) for port in [http_port, *azurite_ports])


def test_a_sandbox_that_announces_nothing_is_reported_not_fatal() -> None:
    with pytest.raises(SandboxUnavailable, match="not JSON"):
        start_sandbox([sys.executable, "-c", "print('hello')"], timeout=30)
    with pytest.raises(SandboxUnavailable, match="exited before"):
        start_sandbox([sys.executable, "-c", "pass"], timeout=30)


def test_sandbox_announcement_is_read_and_the_sandbox_stopped(tmp_path: Path) -> None:
    script = textwrap.dedent("""
        import json, time
        print(json.dumps({"partner_center": "https://127.0.0.1:1", "entra": "https://127.0.0.1:2",
                          "ca_cert": "ca.pem", "app_settings": {"PARTNER_CENTER_URL": "https://127.0.0.1:1"}}),
              flush=True)
        time.sleep(60)
    """)
    out = tmp_path / "out.txt"
    with out.open("w") as sink:
        sandbox = start_sandbox([sys.executable, "-c", script], timeout=30, output=sink)
        try:
            assert sandbox.app_settings == {"PARTNER_CENTER_URL": "https://127.0.0.1:1"}
            assert sandbox.endpoints == {"partner_center": "https://127.0.0.1:1", "entra": "https://127.0.0.1:2"}
        finally:
            sandbox.stop()
    assert sandbox.process.poll() is not None


@pytest.mark.parametrize(("setting", "value", "named"), [
    ("POLL_SCHEDULE", "every five minutes", "POLL_SCHEDULE="),
    ("POLICY_PATH", "tests/devhost/no-such-policy.toml", "the response policy is invalid"),
])
def test_a_bad_setting_or_policy_stops_start_up_naming_it(tmp_path: Path, setting: str, value: str,
                                                          named: str) -> None:
    azurite_ports = [free_port() for _ in range(3)]
    env = {**os.environ, "FRAUD_RESPONDER_LOCAL_SETTINGS": str(tmp_path / "none.json"), setting: value}
    done = subprocess.run(
        [sys.executable, "-m", "devhost", "run", "--no-sandbox", "--host", "devhost", "--port", str(free_port()),
         "--azurite-ports", ",".join(map(str, azurite_ports)), "--azurite-location", str(tmp_path / "azurite")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 1
    assert named in done.stderr and "Ready." not in done.stdout
    assert not any(listening(port) for port in azurite_ports)  # Azurite, started first, was stopped
