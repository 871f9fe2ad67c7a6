"""``make run``: Azurite, then the sandbox, then the function app; Ctrl-C or SIGTERM stops them all.

Before anything is written or started, the state directory's lock is taken (a second ``make run``
from the same checkout is refused, naming the first) and every fixed port is checked (a busy one
is refused, naming the setting that changes it), so a refused start leaves a running stack's CA,
ports and CLI settings as they were.

The app runs under ``func start`` when Azure Functions Core Tools is on PATH, otherwise under
the in-repo DevHost. Its environment is built the way the Functions host builds it:
local.settings.json ``Values`` (local.settings.sample.json when there is none), overridden by
environment variables, then by the sandbox's ``app_settings`` (the endpoints it stands in for).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import TextIO

from devhost.azurite import Azurite, connection_string, start_azurite
from devhost.host import DevHost
from devhost.sandbox_proc import SANDBOX_COMMAND, Sandbox, SandboxUnavailable, start_sandbox
from shared.local_stack import (
    CLI_SETTINGS_FILE,
    STATE_DIR_NAME,
    StackAlreadyRunning,
    StackInfo,
    StackLock,
    find_checkout,
)
from shared.settings import LOCAL_SETTINGS_FILE, STORAGE_SETTING, SettingsError, load_settings, read_local_settings

logger = logging.getLogger("devhost")

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_AZURITE_PORTS = (10000, 10001, 10002)
DEVELOPMENT_STORAGE = "UseDevelopmentStorage=true"
LOCAL_SETTINGS_ENV = "FRAUD_RESPONDER_LOCAL_SETTINGS"
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@dataclass(frozen=True)
class StackOptions:
    port: int = 7071
    sandbox: bool = True
    azurite: bool = True
    azurite_ports: tuple[int, int, int] = DEFAULT_AZURITE_PORTS
    azurite_location: Path | None = None
    """Azurite's data; default ``<state>/azurite``."""
    host: str = "auto"
    """``auto`` (func when on PATH), ``func`` or ``devhost``."""
    functions: tuple[str, ...] | None = None
    state_dir: Path | None = None
    """The stack's state (lock, CLI settings, sandbox CA); default ``.run/``, or the parent of azurite_location."""

    @property
    def state(self) -> Path:
        if self.state_dir is not None:
            return self.state_dir
        return self.azurite_location.parent if self.azurite_location is not None else REPO_ROOT / STATE_DIR_NAME

    @property
    def azurite_data(self) -> Path:
        return self.azurite_location or self.state / "azurite"


def local_settings_values(environ: Mapping[str, str]) -> tuple[dict[str, str], str]:
    """Values of local.settings.json (or of the sample when there is none) and which file they came from."""
    path = Path(environ.get(LOCAL_SETTINGS_ENV) or REPO_ROOT / LOCAL_SETTINGS_FILE)
    if path.is_file():
        return read_local_settings(path), str(path.name)
    sample = REPO_ROOT / "local.settings.sample.json"
    return read_local_settings(sample), f"{sample.name} ({path.name} not found)"


class StartupError(RuntimeError):
    """The stack cannot start: a setting or the policy is invalid (the message names it)."""


def write_cli_settings(env: Mapping[str, str], path: Path) -> Path:
    """The app's settings as a local.settings.json, so the CLI can talk to the same stack.

    Only app settings are written (not the rest of the environment). The file can hold the
    sandbox's local client secret, so it is readable by its owner only; .run/ is not committed.
    """
    from shared.settings import SPECS, STORAGE_SETTING

    names = {spec.name for spec in SPECS} | {STORAGE_SETTING, "FUNCTIONS_WORKER_RUNTIME"}
    values = {k: v for k, v in env.items() if k in names or k.startswith(STORAGE_SETTING + "__")}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(json.dumps({"IsEncrypted": False, "Values": values}, indent=2) + "\n", encoding="utf-8")
    return path


def app_environment(environ: Mapping[str, str], local_values: Mapping[str, str], *,
                    azurite: Azurite | None, sandbox_settings: Mapping[str, str]) -> dict[str, str]:
    """The app's environment: local settings < environment variables < the sandbox's endpoints.

    ``AzureWebJobsStorage`` defaults to development storage; when Azurite runs on other ports than
    the default ones, ``UseDevelopmentStorage=true`` is replaced by its connection string.
    """
    env = {**local_values, **environ}
    storage = env.get(STORAGE_SETTING, "").strip()
    if not storage and not env.get(STORAGE_SETTING + "__accountName"):
        storage = env[STORAGE_SETTING] = DEVELOPMENT_STORAGE
    if azurite is not None and storage == DEVELOPMENT_STORAGE and \
            (azurite.blob_port, azurite.queue_port, azurite.table_port) != DEFAULT_AZURITE_PORTS:
        env[STORAGE_SETTING] = connection_string(azurite.blob_port, azurite.queue_port, azurite.table_port)
    env.update(sandbox_settings)
    return env


class Stack:
    """Everything ``make run`` starts, stopped in reverse order by ``stop`` (also after a failed start)."""

    def __init__(self, options: StackOptions, *, out: TextIO | None = None) -> None:
        self.options = options
        self.out = out or sys.stdout
        self.azurite: Azurite | None = None
        self.sandbox: Sandbox | None = None
        self.host: DevHost | None = None
        self.func: subprocess.Popen[bytes] | None = None
        self._cleanup = contextlib.ExitStack()

    def say(self, line: str = "") -> None:
        self.out.write(line + "\n")
        self.out.flush()

    def _claim(self) -> None:
        """Refuse, before anything is written or started, when a stack runs here or a port is taken."""
        options = self.options
        lock = StackLock(options.state)
        azurite_ports = options.azurite_ports if options.azurite else ()
        try:
            lock.acquire(StackInfo(pid=os.getpid(), app_url=f"http://localhost:{options.port}",
                                   azurite_ports=tuple(azurite_ports),
                                   started_at=datetime.now(UTC).isoformat(timespec="seconds")))
        except StackAlreadyRunning as exc:
            raise StartupError(str(exc)) from None
        self._cleanup.callback(lock.release)
        if options.port and not port_free(options.port):
            raise StartupError(f"port {options.port} (the function app) is in use: stop what listens there, or "
                               f"choose another with `make run PORT={options.port + 1}` (python -m devhost run "
                               "--port N)")
        busy = [port for port in azurite_ports if not port_free(port)]
        if busy:
            raise StartupError(f"port {busy[0]} (Azurite) is in use: another Azurite or stack may be running; stop "
                               "it, or choose other ports with `make run AZURITE_PORTS=10010,10011,10012` "
                               "(python -m devhost run --azurite-ports BLOB,QUEUE,TABLE)")

    def start(self) -> None:
        options = self.options
        self._claim()
        if options.azurite:
            options.azurite_data.mkdir(parents=True, exist_ok=True)
            blob, queue, table = options.azurite_ports
            self.azurite = start_azurite(blob_port=blob, queue_port=queue, table_port=table, in_memory=False,
                                         location=options.azurite_data)
            self._cleanup.callback(self.azurite.stop)
            self.say(f"Azurite       blob http://127.0.0.1:{blob}  queue http://127.0.0.1:{queue}  "
                     f"table http://127.0.0.1:{table}  (data in {_shown(options.azurite_data)})")
        sandbox_settings: dict[str, str] = {}
        if options.sandbox:
            try:
                self.sandbox = start_sandbox((*SANDBOX_COMMAND, "--state-dir", str(options.state / "sandbox")),
                                             env=os.environ, output=self.out)
            except (SandboxUnavailable, OSError) as exc:
                self.say(f"WARNING: sandbox not started: {exc}. Going on without it: the app talks to the "
                         "endpoints in its settings (the real Microsoft ones by default).")
            else:
                self._cleanup.callback(self.sandbox.stop)
                sandbox_settings = self.sandbox.app_settings
                self.say("Sandbox       " + "\n              ".join(self.sandbox.describe()))
        local_values, source = local_settings_values(os.environ)
        env = app_environment(os.environ, local_values, azurite=self.azurite, sandbox_settings=sandbox_settings)
        self.say(f"Settings      {source}, overridden by environment variables"
                 + (" and the sandbox's endpoints" if sandbox_settings else ""))
        # Start-up validation: a bad setting or policy stops here, named, before anything is served.
        # (The Functions host has no start-up hook: there every handler and /api/health report it.)
        try:
            settings = load_settings(env, local_settings=REPO_ROOT / "does-not-exist.json")
        except SettingsError as exc:
            raise StartupError(f"{exc} (set it in local.settings.json or the environment)") from None
        from shared.response.policy import PolicyError, get_policy

        try:
            policy = get_policy(settings.policy_path)
        except PolicyError as exc:
            raise StartupError(f"the response policy is invalid: {exc} (check it with "
                               "`fraud-responder policy check`)") from None
        self.say(f"Policy        {policy.summary()} ({_shown(settings.policy_path)})")
        # Beside the stack's other local state (.run/ by default), not in the repo's root.
        written = write_cli_settings(env, options.state / CLI_SETTINGS_FILE)
        checkout = options.state.resolve().parent
        if options.state.name == STATE_DIR_NAME and find_checkout(checkout, Path()) == checkout:
            self.say(f"CLI           fraud-responder run in this checkout uses this stack ({_shown(written)}); "
                     f"elsewhere: export FRAUD_RESPONDER_LOCAL_SETTINGS={written.resolve()}")
        else:
            self.say(f"CLI           export FRAUD_RESPONDER_LOCAL_SETTINGS={written.resolve()}   "
                     "(fraud-responder then uses this stack)")
        use_func = options.host == "func" or (options.host == "auto" and shutil.which("func") is not None)
        if use_func:
            self._start_func(env)
        else:
            self._start_devhost(env)

    def _start_devhost(self, env: Mapping[str, str]) -> None:
        from devhost.keys import FunctionKeys

        key_file = self.options.state / "function-keys.json"  # stable across restarts
        keys = FunctionKeys.load(key_file) if key_file.is_file() else FunctionKeys()
        self.host = DevHost(environ=env, http_port=self.options.port, functions=self.options.functions, keys=keys)
        self.host.start()
        self._cleanup.callback(self.host.stop)
        keys.save(key_file)
        self.say(f"Function app  dev host (python -m devhost) on {self.host.base_url}")
        self.say(f"Webhook key   the receiver's own function key: python -m devhost.keys {_shown(key_file)} "
                 "receive_webhook")
        for line in self.host.describe():
            self.say("  " + line)

    def _start_func(self, env: Mapping[str, str]) -> None:
        func = shutil.which("func")
        if func is None:
            raise FileNotFoundError("func (Azure Functions Core Tools) is not on PATH; use --host devhost")
        described = DevHost(environ=env, http_port=self.options.port, functions=self.options.functions).prepare()
        command = [func, "start", "--port", str(self.options.port)]
        if self.options.functions:
            command += ["--functions", *self.options.functions]
        self.func = subprocess.Popen(command, cwd=REPO_ROOT, env=dict(env), stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        process = self.func
        self._cleanup.callback(lambda: _stop_group(process))
        self.say(f"Function app  func start (Azure Functions Core Tools) on http://localhost:{self.options.port}")
        for line in described.describe():
            self.say("  " + line)

    def exited(self) -> int | None:
        """The exit code of ``func start`` when it ended by itself; None while everything runs."""
        return self.func.poll() if self.func is not None else None

    def stop(self) -> None:
        self._cleanup.close()


def port_free(port: int) -> bool:
    """Whether 127.0.0.1:``port`` can be listened on now (as the stack's servers would, with SO_REUSEADDR)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _stop_group(process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def run(options: StackOptions, *, out: TextIO | None = None, signals: Sequence[signal.Signals] = STOP_SIGNALS) -> int:
    """Start the stack, wait for Ctrl-C / SIGTERM (or for func to exit), stop everything; the exit code."""
    stop = threading.Event()
    received: list[int] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        received.append(signum)
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in signals}
    stack = Stack(options, out=out)
    try:
        stack.start()
        if not stop.is_set():
            stack.say("Ready. Ctrl-C stops everything.")
        while not stop.wait(0.5):
            code = stack.exited()
            if code is not None:
                stack.say(f"func exited with code {code}; stopping the rest")
                return code
        return 0
    finally:
        if received:
            stack.say(f"Stopping ({signal.Signals(received[0]).name})...")
        stack.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
