"""The whole app under load: Azurite, the sandbox and the dev host as a process of its own.

``containment`` and ``backlog`` drive the app as ``make run`` runs it: the dev host
(``python -m chaos.host``, the same ``DevHost`` with host.json's queue polling) in a subprocess,
Azurite (its access log counts storage round trips) and the sandbox's stand-ins in this process.
Their figures come from what the system records anyway: the host's JSON log lines, storage rows,
the sandbox's request log and webhook deliveries.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

NEVER = "0 0 0 1 1 *"
"""An NCRONTAB schedule that does not come round during a benchmark (1 January, midnight)."""
FRAUD_EVENT = "azure-fraud-event-detected"
_ACCESS = re.compile(r'"(?P<method>[A-Z]+) /[^/ ]+/(?P<path>[^ ?]*)[^"]*" (?P<status>\d{3})')


@dataclass
class AppStack:
    """A running stack: ``sandbox`` (in process), ``azurite``, the ``host`` process and its log."""

    azurite: Any
    sandbox: Any
    host: Any
    settings: Any
    work: Path
    prefix: str
    keys: Any
    port: int

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_lines(self) -> Iterator[dict[str, Any]]:
        """The host's JSON log lines (other output, such as the READY line, is skipped)."""
        with (self.work / "host.log").open(encoding="utf-8", errors="replace") as log:
            for line in log:
                if line.startswith("{"):
                    with contextlib.suppress(ValueError):
                        yield json.loads(line)

    def storage_requests(self) -> Counter[str]:
        """Storage requests so far from Azurite's access log, by ``table:<name>`` or ``queue:<name>``."""
        counts: Counter[str] = Counter()
        with (self.work / "azurite.log").open(encoding="utf-8", errors="replace") as log:
            for line in log:
                match = _ACCESS.search(line)
                if match is None:
                    continue
                name = re.split(r"[(/]", match["path"], maxsplit=1)[0]
                if "-" in name:  # queue names have hyphens (alerts-respond); table names cannot
                    counts[f"queue:{name}"] += 1
                else:
                    counts[f"table:{name[len(self.prefix):] if name.startswith(self.prefix) else name}"] += 1
        return counts

    def fire(self, function: str, payload: str = "") -> None:
        """Run a timer or queue function now (the host's admin endpoint, with the master key)."""
        import httpx

        answer = httpx.post(f"{self.base_url}/admin/functions/{function}", json={"input": payload},
                            headers={"x-functions-key": self.keys.master}, timeout=30)
        if answer.status_code != 202:
            raise RuntimeError(f"POST /admin/functions/{function} answered {answer.status_code}: {answer.text[:300]}")


def parse_time(text: str) -> float:
    """Epoch seconds from an ISO time (the host log's, or Partner Center's 7-digit fractions)."""
    text = text.strip().replace("Z", "+00:00")
    match = re.match(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d+))?(.*)$", text)
    if match is None:
        raise ValueError(f"not an ISO time: {text!r}")
    fraction = (match[2] or "0")[:6].ljust(6, "0")
    zone = match[3] or "+00:00"
    return datetime.fromisoformat(f"{match[1]}.{fraction}{zone}").timestamp()


@contextlib.contextmanager
def app_stack(scenario: dict[str, Any], policy_text: str, *, env: dict[str, str] | None = None,
              lease_seconds: float = 600.0) -> Iterator[AppStack]:
    """Start Azurite, the sandbox and the dev host (webhook registered to it); stop them all after."""
    from chaos.host import HostProcess
    from devhost.azurite import free_port, start_azurite
    from devhost.host import schedule_settings
    from devhost.keys import FunctionKeys
    from sandbox.core import start_sandbox
    from sandbox.webhooks import Registration
    from shared.settings import load_settings

    with contextlib.ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-")))
        azurite = start_azurite(access_log=work / "azurite.log")
        stack.callback(azurite.stop)
        sandbox = start_sandbox(scenario, state_dir=work / "sandbox")
        stack.callback(sandbox.stop)
        policy = work / "policy.toml"
        policy.write_text(policy_text, encoding="utf-8")
        port = free_port()
        prefix = "bench" + uuid.uuid4().hex[:6]
        host_env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("FRAUD_RESPONDER_", "AzureFunctionsJobHost"))},
            **sandbox.app_settings(),
            "AzureWebJobsStorage": azurite.connection_string,
            "TABLE_NAME_PREFIX": prefix,
            "POLICY_PATH": str(policy),
            **dict.fromkeys(schedule_settings(), NEVER),
            "ALERT_SOURCES": "partner_center",
            "FRAUD_RESPONDER_LOCAL_SETTINGS": str(work / "no-local-settings.json"),
            "LOG_LEVEL": "INFO",
            "LOG_FORMAT": "json",
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        settings = load_settings(host_env, local_settings=work / "no-local-settings.json")
        keys = FunctionKeys()
        pc: Any = sandbox.services["partner_center"]
        with pc.lock:
            pc.registration = Registration(
                f"http://127.0.0.1:{port}/api/webhooks/partner-center?code={keys.function_key('receive_webhook')}",
                [FRAUD_EVENT])
        host = HostProcess(host_env, port=port, lease_seconds=lease_seconds, log_path=work / "host.log",
                           keys_path=keys.save(work / "function-keys.json"))
        stack.callback(host.stop)
        host.start()
        yield AppStack(azurite=azurite, sandbox=sandbox, host=host, settings=settings, work=work, prefix=prefix,
                       keys=keys, port=port)


def wait_until(check: Any, *, limit: float, what: str, progress: Any = None, every: float = 10.0,
               poll: float = 0.5) -> float:
    """Call ``check()`` until it is true; seconds taken. TimeoutError naming ``what`` after ``limit``."""
    started = time.monotonic()
    last = started
    while True:
        if check():
            return time.monotonic() - started
        now = time.monotonic()
        if now - started > limit:
            raise TimeoutError(f"{what} did not happen within the {limit:.0f} s limit")
        if progress is not None and now - last >= every:
            progress(now - started)
            last = now
        time.sleep(poll)

