"""Calls a user function the way the Python worker does, logs it like the host, and records it.

Sync functions run on the caller's thread (an HTTP request thread, a queue worker, a timer
thread); coroutine functions run on one shared event loop, as in the Python worker.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from devhost.app import AppFunction
from devhost.invocations import Invocation, InvocationLog

logger = logging.getLogger("devhost")


@dataclass
class InvocationContext:
    """What ``context: func.Context`` gives a function (the attributes apps use)."""

    invocation_id: str
    function_name: str
    function_directory: str
    trace_context: Any = None
    retry_context: Any = None
    thread_local_storage: threading.local = field(default_factory=threading.local)


class EventLoopThread:
    """One asyncio loop on a daemon thread, shared by every coroutine function."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread:
            return
        ready = threading.Event()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
            ready.set()
            self._loop.run_forever()
            self._loop.close()

        self._thread = threading.Thread(target=run, name="devhost-asyncio", daemon=True)
        self._thread.start()
        ready.wait()

    def run(self, coroutine: Any) -> Any:
        """Run ``coroutine`` on the loop and wait for its result (or exception)."""
        if self._loop is None:
            raise RuntimeError("the dev host's event loop is not running; start the DevHost first")
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        return future.result()

    def stop(self) -> None:
        if self._loop and self._thread:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
        self._loop, self._thread = None, None


class Invoker:
    """Runs one invocation: log ``Executing``, call, log ``Executed`` (with the traceback on failure)."""

    def __init__(self, log: InvocationLog, loop: EventLoopThread, app_root: Path) -> None:
        self.log = log
        self._loop = loop
        self._app_root = app_root

    def invoke(self, function: AppFunction, value: Any, *, trigger: str, reason: str,
               details: dict[str, object] | None = None) -> Any:
        """Call ``function`` with its trigger value; return its result or re-raise its exception."""
        invocation_id = str(uuid.uuid4())
        kwargs: dict[str, Any] = {function.arg_name: value}
        if function.wants_context:
            context = InvocationContext(invocation_id, function.name, str(self._app_root))
            context.thread_local_storage.invocation_id = invocation_id
            kwargs["context"] = context
        logger.info("Executing 'Functions.%s' (Reason='%s', Id=%s)", function.name, reason, invocation_id)
        started = datetime.now(UTC)
        clock = time.perf_counter()
        error: BaseException | None = None
        try:
            if function.is_async:
                return self._loop.run(function.user_function(**kwargs))
            return function.user_function(**kwargs)
        except Exception as exc:
            error = exc
            raise
        finally:
            duration_ms = (time.perf_counter() - clock) * 1000
            self.log.add(Invocation(
                invocation_id=invocation_id, function=function.name, trigger=trigger, started=started,
                duration_ms=duration_ms, outcome="failed" if error else "succeeded",
                error=_describe(error) if error else None, details=dict(details or {}),
            ))
            if error is None:
                logger.info("Executed 'Functions.%s' (Succeeded, Id=%s, Duration=%.0fms)",
                            function.name, invocation_id, duration_ms)
            else:
                logger.error("Executed 'Functions.%s' (Failed, Id=%s, Duration=%.0fms)",
                             function.name, invocation_id, duration_ms, exc_info=error)


def _describe(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0][:300]}" if lines else type(error).__name__
