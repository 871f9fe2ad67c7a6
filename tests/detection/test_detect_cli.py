"""`fraud-responder detect --once` / `--status` as a real process against the sandbox, and the timer's
fan-out through the alerts-detect queue to its handler."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from devhost.azurite import Azurite
from sandbox import ids
from sandbox.core import Sandbox
from sandbox.faults import Fault
from shared.detection import detectors as registry
from shared.detection.jobs import DetectionRuntime, fan_out, handle_detect_message
from shared.jobs import DetectJob
from shared.names import DETECT_QUEUE
from shared.spend.detect import SPEND_DETECTORS
from tests.conftest import settings_env
from tests.detection.test_detect_run import detection_settings, detector_alerts


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "shared.cli", *args], env=env, capture_output=True, text=True,
                          check=False, timeout=300)


def test_detect_once_prints_a_line_per_detector_and_status_shows_checkpoints(azurite: Azurite,
                                                                             fresh_sandbox: Sandbox) -> None:
    env = {**os.environ, **settings_env(azurite, **fresh_sandbox.app_settings()),
           "FRAUD_RESPONDER_LOCAL_SETTINGS": "no-such-file.json"}

    out = cli(env, "detect", "--once")

    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert lines[0].split() == ["DETECTOR", "SUBSCRIPTIONS", "EVENTS", "FINDINGS", "NEW", "UPDATED", "ERRORS",
                                "STATUS"]
    rows = {line.split()[0]: line.split()[1:] for line in lines[1:]}
    assert set(rows) == {*registry.names(), *SPEND_DETECTORS}  # the activity-log detectors, then spend
    assert rows["compute_burst"][0] == "4" and rows["compute_burst"][3] == "1"  # 4 subscriptions, 1 new alert
    assert rows["privilege_change"][3] == "1" and all(r[-1] == "ok" for r in rows.values())

    status = cli(env, "detect", "--status", "--json")
    assert status.returncode == 0, status.stderr
    doc = json.loads(status.stdout)
    assert {d["detector"] for d in doc["detectors"] if d["ok"]} == {*registry.names(), *SPEND_DETECTORS}
    assert doc["watchlist"]["count"] == 4
    assert ids.SUB_WOODGROVE_PROD in {c["subject"] for c in doc["checkpoints"]}


def test_detect_once_exits_1_naming_what_failed(azurite: Azurite, fresh_sandbox: Sandbox) -> None:
    fresh_sandbox.add_fault(Fault(service="arm", kind="status", status=403, times=None,
                                  path=f"/subscriptions/{ids.SUB_WOODGROVE_PROD}/providers/microsoft.insights"))
    env = {**os.environ, **settings_env(azurite, **fresh_sandbox.app_settings()),
           "FRAUD_RESPONDER_LOCAL_SETTINGS": "no-such-file.json"}

    out = cli(env, "detect", "--once")

    assert out.returncode == 1
    assert ids.SUB_WOODGROVE_PROD in out.stderr


def test_the_timer_fans_out_jobs_that_the_queue_handler_runs(azurite: Azurite, fresh_sandbox: Sandbox) -> None:
    settings, _ = detection_settings(azurite, fresh_sandbox, DETECT_GROUP_SIZE="3")
    runtime = DetectionRuntime.from_settings(settings)
    queue = runtime.queue
    for _ in range(100):  # the session's queue: start empty
        messages = queue.receive(DETECT_QUEUE, visibility_timeout=1)
        if not messages:
            break
        for message in messages:
            queue.delete(DETECT_QUEUE, message)

    sent = fan_out(runtime)

    assert sent == 3  # 4 subscriptions in groups of 3, plus the partner scope
    bodies = []
    for _ in range(10):
        for message in queue.receive(DETECT_QUEUE, visibility_timeout=30):
            bodies.append(message.body())
            queue.delete(DETECT_QUEUE, message)
        if len(bodies) >= sent:
            break
    jobs = [DetectJob.from_json(b) for b in bodies]
    assert sorted(len(j.targets) for j in jobs) == [0, 1, 3] and {j.scope for j in jobs} == {"subscriptions",
                                                                                            "partner"}
    for body in bodies:
        run = handle_detect_message(body, runtime=runtime)
        assert run is not None and not run.failed
    assert {r["source"] for r in detector_alerts(runtime)} == {"compute_burst", "privilege_change"}
    assert handle_detect_message(b'{"scope": "nope"}', runtime=runtime) is None  # dropped, not retried

    off = DetectionRuntime.from_settings(detection_settings(azurite, fresh_sandbox, DETECT_ENABLED="false")[0])
    assert fan_out(off) == 0
