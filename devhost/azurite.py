"""Start and stop Azurite (installed in the repo by ``npm ci``) on loopback ports."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
AZURITE_BIN = REPO_ROOT / "node_modules" / ".bin" / "azurite"

# Azurite's documented development account; it is public and only valid against the emulator.
DEV_ACCOUNT = "devstoreaccount1"
DEV_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


class AzuriteNotInstalled(RuntimeError):
    """Azurite is missing: run `npm ci` in the repository root (make test does it)."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def connection_string(blob_port: int, queue_port: int, table_port: int, host: str = "127.0.0.1") -> str:
    return (
        f"DefaultEndpointsProtocol=http;AccountName={DEV_ACCOUNT};AccountKey={DEV_KEY};"
        f"BlobEndpoint=http://{host}:{blob_port}/{DEV_ACCOUNT};"
        f"QueueEndpoint=http://{host}:{queue_port}/{DEV_ACCOUNT};"
        f"TableEndpoint=http://{host}:{table_port}/{DEV_ACCOUNT};"
    )


@dataclass
class Azurite:
    """A running Azurite process; ``stop()`` ends it and everything it started."""

    process: subprocess.Popen[bytes]
    blob_port: int
    queue_port: int
    table_port: int

    @property
    def connection_string(self) -> str:
        return connection_string(self.blob_port, self.queue_port, self.table_port)

    def stop(self) -> None:
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
            except ProcessLookupError:
                return
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)


def _wait_listening(ports: tuple[int, ...], process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    pending = list(ports)
    while pending:
        if process.poll() is not None:
            raise RuntimeError(f"Azurite exited with code {process.returncode}; is the port taken?")
        port = pending[0]
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                pending.pop(0)
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"Azurite did not listen on port {port} within {timeout:.0f}s") from None
            time.sleep(0.1)


def start_azurite(
    *,
    blob_port: int | None = None,
    queue_port: int | None = None,
    table_port: int | None = None,
    in_memory: bool = True,
    location: Path | None = None,
    timeout: float = 60.0,
    access_log: Path | None = None,
) -> Azurite:
    """Start Azurite (blob, queue, table) on loopback; free ports are chosen when none are given.

    ``access_log``: a file that receives Azurite's access log (one line per storage request), so a
    benchmark can count storage round trips; by default Azurite runs silent.
    """
    if not AZURITE_BIN.exists():
        raise AzuriteNotInstalled(f"Azurite is not installed at {AZURITE_BIN.relative_to(REPO_ROOT)}: run `npm ci`")
    if shutil.which("node") is None:
        raise AzuriteNotInstalled("Node.js is not on PATH: install Node.js 20.6 or newer, then run `npm ci`")
    ports = (blob_port or free_port(), queue_port or free_port(), table_port or free_port())
    args = [
        str(AZURITE_BIN),
        "--blobHost", "127.0.0.1", "--queueHost", "127.0.0.1", "--tableHost", "127.0.0.1",
        "--blobPort", str(ports[0]), "--queuePort", str(ports[1]), "--tablePort", str(ports[2]),
        *(() if access_log is not None else ("--silent",)), "--skipApiVersionCheck", "--loose", "--disableTelemetry",
    ]
    if in_memory:
        args.append("--inMemoryPersistence")
    else:
        args += ["--location", str(location or REPO_ROOT / ".run" / "azurite")]
    # A file, not a pipe: a full pipe would stall Azurite.
    log = access_log.open("ab") if access_log is not None else tempfile.TemporaryFile()  # noqa: SIM115
    process = subprocess.Popen(
        args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        start_new_session=True, cwd=REPO_ROOT,
    )
    azurite = Azurite(process, *ports)
    try:
        _wait_listening(ports, process, timeout)
    except BaseException:
        azurite.stop()
        raise
    return azurite
