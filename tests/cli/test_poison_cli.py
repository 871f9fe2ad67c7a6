"""`fraud-responder poison list|replay`, run as a real process against real poison queues on Azurite.

A respond job is poisoned the real way: the sandbox's Entra refuses the refresh token, the
responder fails on the job's last delivery, records it and marks the alert's job poisoned, and
the message goes to alerts-respond-poison as the Functions host moves it. After the fix, replay
puts it back and the responder really runs it.

Queue names are not prefixed per test, so this module runs its own Azurite: replaying must not
move other tests' messages around.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest

from devhost.azurite import Azurite, start_azurite
from sandbox.core import Sandbox
from shared.intake.sync import HANDLED, PENDING, POISONED
from shared.names import RESPOND_QUEUE, SYNC_QUEUE, poison_queue
from shared.response.engine import RetryLater
from shared.response.jobs import max_dequeue_count
from shared.settings import load_settings
from shared.storage.queues import QueueSender
from tests.cli.test_alerts_cli import cli
from tests.conftest import REPO_ROOT, settings_env
from tests.response.respond_support import MINING_KEY, Stage, respond_one, stage, take_job


@pytest.fixture(scope="module")
def own_azurite() -> Iterator[Azurite]:
    instance = start_azurite()
    try:
        yield instance
    finally:
        instance.stop()


def cli_env(st: Stage) -> dict[str, str]:
    return {**os.environ, **st.env, "FRAUD_RESPONDER_LOCAL_SETTINGS": "no-such-file.json"}


def entra(sandbox: Sandbox) -> Any:
    return sandbox.services["entra"]


def test_poisoned_respond_job_is_listed_then_replayed_and_runs(own_azurite: Azurite, fresh_sandbox: Sandbox) -> None:
    st = stage(own_azurite, fresh_sandbox)
    job, body = take_job(st)
    entra(fresh_sandbox).set_state(refresh_token_state="expired")
    with pytest.raises(RetryLater):  # the last delivery: recorded and marked poisoned, then the host moves it
        respond_one(body, dequeue_count=max_dequeue_count(), responder=st.responder())
    st.runtime.queue.send_json(poison_queue(RESPOND_QUEUE), json.loads(body))
    assert st.job_state(job) == POISONED
    env = cli_env(st)

    listed = cli(env, "poison", "list", "--json")

    assert listed.returncode == 0, listed.stderr
    doc = json.loads(listed.stdout)
    queues = {q["queue"]: q for q in doc["queues"]}
    assert queues[RESPOND_QUEUE]["count"] == 1 and queues[SYNC_QUEUE]["count"] == 0
    assert queues[RESPOND_QUEUE]["messages"][0]["json"] == job
    [record] = doc["records"]
    assert (record["queue"], record["alert_key"], record["version"]) == (RESPOND_QUEUE, MINING_KEY, job["version"])
    assert record["error_type"] == "RetryLater" and record["replayed_at"] is None
    table = cli(env, "poison", "list")
    assert MINING_KEY in table.stdout and "fraud-responder poison replay QUEUE" in table.stdout

    entra(fresh_sandbox).set_state(refresh_token_state="valid")  # the operator re-consented
    replayed = cli({**env, "LOGNAME": "ops", "USER": "ops"}, "poison", "replay", RESPOND_QUEUE)

    assert replayed.returncode == 0, replayed.stderr
    assert "re-arming 1 poisoned respond job(s)" in replayed.stderr and "moved 1 message(s)" in replayed.stderr
    assert replayed.stdout.strip() == (f"replayed 1 message(s) from {poison_queue(RESPOND_QUEUE)} to {RESPOND_QUEUE}; "
                                       "1 poisoned respond job(s) re-armed")
    again, replayed_body = take_job(st)  # back on alerts-respond (with the sync's jobs for the other alerts)
    assert again == job and st.job_state(job) == PENDING
    result = respond_one(replayed_body, responder=st.responder())
    assert result is not None and not result.handled_before and not result.deferred
    assert st.job_state(job) == HANDLED

    after = json.loads(cli(env, "poison", "list", "--json").stdout)
    assert all(q["count"] == 0 for q in after["queues"])
    assert after["records"][0]["replayed_by"] == "local:ops" and after["records"][0]["replayed_at"]


def test_replay_takes_either_queue_name_and_refuses_unknown_ones(own_azurite: Azurite) -> None:
    app_env = settings_env(own_azurite)
    env = {**os.environ, **app_env, "FRAUD_RESPONDER_LOCAL_SETTINGS": "no-such-file.json"}
    queue = QueueSender(load_settings(app_env, local_settings=REPO_ROOT / "does-not-exist.json"))
    queue.send_json(poison_queue(SYNC_QUEUE), {"scope": "all", "trigger": "test"})

    replayed = cli({**env, "LOGNAME": "ops", "USER": "ops"}, "poison", "replay", poison_queue(SYNC_QUEUE), "--json")

    assert replayed.returncode == 0, replayed.stderr
    assert json.loads(replayed.stdout) | {"operator": "ops"} == {
        "queue": SYNC_QUEUE, "from": poison_queue(SYNC_QUEUE), "moved": 1, "rearmed": 0, "records": 0,
        "operator": "ops"}
    [message] = queue.receive(SYNC_QUEUE)
    assert message.json() == {"scope": "all", "trigger": "test"}  # unchanged, still base64 for the trigger
    queue.delete(SYNC_QUEUE, message)

    unknown = cli(env, "poison", "replay", "alerts-everything")
    assert unknown.returncode == 1
    assert unknown.stderr.strip() == ("error: unknown queue 'alerts-everything': choose from alerts-sync, "
                                      "alerts-respond, alerts-detect")
    assert cli(env, "poison", "replay").returncode == 2
    empty = cli(env, "poison", "list")
    assert empty.returncode == 0 and empty.stdout.rstrip().endswith("no poison messages")
