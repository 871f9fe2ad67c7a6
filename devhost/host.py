"""DevHost: runs a FunctionApp's HTTP, timer and queue functions in this process.

A development tool, not a production runtime. Tests run it in-process on a free port::

    with DevHost(environ={"AzureWebJobsStorage": conn}, http_port=0) as host:
        httpx.get(host.base_url + "/api/health")
        host.invocations.wait_for(lambda i: i.function == "sync_alerts")
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import uuid
from collections.abc import Collection, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from devhost.app import AppFunction, HttpTrigger, QueueTrigger, SkippedFunction, TimerTrigger, read_functions
from devhost.hostjson import HostConfig
from devhost.http_server import AdminError, HttpFrontEnd
from devhost.invocations import InvocationLog
from devhost.invoker import EventLoopThread, Invoker
from devhost.keys import FunctionKeys
from devhost.queues import LEASE_SECONDS, QueueListener, storage_connection
from devhost.timers import SETTING_REFERENCE, TimerRunner, resolve_schedule

logger = logging.getLogger("devhost")

REPO_ROOT = Path(__file__).resolve().parent.parent


def load_function_app() -> Any:
    """The FunctionApp from function_app.py: the same object ``func start`` and Azure load."""
    import function_app

    return function_app.app


class DevHost:
    """HTTP on 127.0.0.1 (``http_port``; 0 = a free port), timers, and queue listeners on Azurite.

    ``environ`` is applied to ``os.environ`` while the host runs (the app reads its settings from
    the environment, as under the Functions host) and restored on ``stop``. ``functions`` limits
    the host to those names, like ``func start --functions``. ``keys`` are the function keys HTTP
    calls must present (random ones when not given; each function gets a default key): see
    ``devhost.keys``. ``message_lease_seconds`` is how long a fetched queue message stays invisible
    while its function runs (the host's 10 minutes by default; a fault campaign shortens it so a
    killed invocation's message comes back sooner).
    """

    def __init__(self, app: Any | None = None, *, environ: Mapping[str, str] | None = None,
                 host_json: Mapping[str, Any] | Path | None = None, http_port: int = 7071,
                 functions: Collection[str] | None = None, app_root: Path = REPO_ROOT,
                 keys: FunctionKeys | None = None, message_lease_seconds: float = LEASE_SECONDS) -> None:
        self._app = app
        self._environ = dict(environ or {})
        if isinstance(host_json, Mapping):
            self.config = HostConfig.from_dict(host_json)
        else:
            self.config = HostConfig.load(host_json or app_root / "host.json")
        self._http_port = http_port
        self._only = set(functions) if functions is not None else None
        self._app_root = app_root
        self.keys = keys or FunctionKeys()
        self._message_lease_seconds = message_lease_seconds
        self.invocations = InvocationLog()
        self.functions: list[AppFunction] = []
        self.skipped: list[SkippedFunction] = []
        self._loop = EventLoopThread()
        self._invoker = Invoker(self.invocations, self._loop, app_root)
        self._http: HttpFrontEnd | None = None
        self._timers: dict[str, TimerRunner] = {}
        self._queues: dict[str, QueueListener] = {}
        self._manual: list[threading.Thread] = []
        self._saved_environ: dict[str, str | None] = {}
        self._started = False

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> DevHost:
        """Read the app, check every trigger (a bad schedule or connection fails here), then listen."""
        if self._started:
            return self
        self._apply_environ()
        try:
            self._prepare()
            self._loop.start()
            if self._http is not None:
                self._http.start()
            for runner in self._timers.values():
                runner.start()
            for listener in self._queues.values():
                listener.start()
        except BaseException:
            self.stop()
            raise
        self._started = True
        return self

    def stop(self) -> None:
        """Stop listening, let running functions finish, restore the environment."""
        if self._http is not None:
            self._http.stop()
        for listener in self._queues.values():
            listener.stop()
        for runner in self._timers.values():
            runner.stop()
        for thread in self._manual:
            thread.join(timeout=30)
        self._manual.clear()
        self._loop.stop()
        self._restore_environ()
        self._started = False

    def __enter__(self) -> DevHost:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """``http://localhost:<port>``: the root of ``/api/...`` and ``/admin/...``."""
        if self._http is None:
            raise RuntimeError("the dev host is not started, or runs no HTTP functions")
        return self._http.base_url

    # -- admin: POST /admin/functions/<name> --------------------------------------------------

    def fire(self, name: str, input_text: str = "") -> None:
        """Run a timer or queue function now, as Core Tools' admin endpoint does (202: runs in the background)."""
        function = next((f for f in self.functions if f.name.lower() == name.lower()), None)
        if function is None:
            raise AdminError(404, f"no function named {name!r}; functions: {', '.join(f.name for f in self.functions)}")
        if isinstance(function.trigger, HttpTrigger):
            raise AdminError(400, f"{function.name} is an HTTP function: call {self.route_url(function)} instead")
        if isinstance(function.trigger, TimerTrigger):
            self._timers[function.name].fire_now()
            return
        thread = threading.Thread(target=self._run_queue_function_now, args=(function, input_text),
                                  name=f"devhost-manual-{function.name}", daemon=True)
        self._manual = [t for t in self._manual if t.is_alive()]
        self._manual.append(thread)
        thread.start()

    def _run_queue_function_now(self, function: AppFunction, input_text: str) -> None:
        from azure.functions.queue import QueueMessage

        message = QueueMessage(  # type: ignore[no-untyped-call]
            id=str(uuid.uuid4()), body=input_text.encode("utf-8"), dequeue_count=1)
        # A failure is logged with its traceback by the invoker; nothing to retry for a manual run.
        with contextlib.suppress(Exception):
            self._invoker.invoke(function, message, trigger="manual",
                                 reason="This function was programmatically called via the host APIs.",
                                 details={"queue": getattr(function.trigger, "queue_name", "")})

    # -- description ---------------------------------------------------------------------------

    def route_url(self, function: AppFunction) -> str:
        assert isinstance(function.trigger, HttpTrigger)
        base = self._http.base_url if self._http and self._started else f"http://localhost:{self._http_port}"
        prefix = f"/{self.config.route_prefix}" if self.config.route_prefix else ""
        return f"{base}{prefix}/{function.trigger.route}"

    def describe(self) -> list[str]:
        """One line per function: HTTP methods and URL, timer schedule and next run, or queue."""
        width = max([len(f.name) for f in self.functions] + [len(s.name) for s in self.skipped], default=0)
        lines = []
        for function in self.functions:
            trigger = function.trigger
            if isinstance(trigger, HttpTrigger):
                methods = ",".join(trigger.methods) if len(trigger.methods) < 8 else "any"
                lines.append(f"{function.name:<{width}}  http   {methods} {self.route_url(function)}")
            elif isinstance(trigger, TimerTrigger):
                runner = self._timers[function.name]
                lines.append(f"{function.name:<{width}}  timer  {runner.schedule.expression} (UTC; next "
                             f"{runner.next_due.isoformat()}; run now: POST {self._admin_url(function)})")
            else:
                listener = self._queues[function.name]
                lines.append(f"{function.name:<{width}}  queue  {listener.queue_name} "
                             f"(poison: {listener.poison_name}; run now: POST {self._admin_url(function)})")
        lines += [f"{s.name:<{width}}  skipped: {s.reason}" for s in self.skipped]
        return lines

    def _admin_url(self, function: AppFunction) -> str:
        base = self._http.base_url if self._http and self._started else f"http://localhost:{self._http_port}"
        return f"{base}/admin/functions/{function.name}"

    # -- internals -----------------------------------------------------------------------------

    def prepare(self) -> DevHost:
        """Read the app and check its triggers without listening (for ``describe`` under func start)."""
        self._apply_environ()
        try:
            self._prepare()
        finally:
            self._restore_environ()
        return self

    def _prepare(self) -> None:
        app = self._app if self._app is not None else load_function_app()
        functions, skipped = read_functions(app)
        if self._only is not None:
            unknown = self._only - {f.name for f in functions} - {s.name for s in skipped}
            if unknown:
                raise ValueError(f"no function named {', '.join(sorted(unknown))}")
            functions = [f for f in functions if f.name in self._only]
            skipped = [s for s in skipped if s.name in self._only]
        self.functions, self.skipped = functions, skipped
        environ = {**os.environ, **self._environ}
        self._timers, self._queues = {}, {}
        for function in functions:
            trigger = function.trigger
            if isinstance(trigger, TimerTrigger):
                schedule = resolve_schedule(function.name, trigger.schedule, environ)
                self._timers[function.name] = TimerRunner(function, schedule, self._invoker)
            elif isinstance(trigger, QueueTrigger):
                connection = storage_connection(trigger.connection, environ)
                self._queues[function.name] = QueueListener(function, connection, self.config.queues, self._invoker,
                                                            lease_seconds=self._message_lease_seconds)
        self.keys.ensure(f.name for f in functions if isinstance(f.trigger, HttpTrigger))
        self._http = HttpFrontEnd(functions, self._invoker, route_prefix=self.config.route_prefix, fire=self.fire,
                                  port=self._http_port, keys=self.keys)

    def _apply_environ(self) -> None:
        from shared.settings import reset_settings_cache

        for name, value in self._environ.items():
            self._saved_environ.setdefault(name, os.environ.get(name))
            os.environ[name] = value
        reset_settings_cache()

    def _restore_environ(self) -> None:
        from shared.settings import reset_settings_cache

        for name, old in self._saved_environ.items():
            if old is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = old
        self._saved_environ.clear()
        reset_settings_cache()


def schedule_settings(app: object | None = None) -> list[str]:
    """The settings the app's timer schedules name (``%SETTING%``): a harness that wants no timer sets them all."""
    functions, _ = read_functions(app if app is not None else load_function_app())
    return sorted({name for f in functions if isinstance(f.trigger, TimerTrigger)
                   for name in SETTING_REFERENCE.findall(f.trigger.schedule)})
