"""The dev host runs the real FunctionApp against real Azurite: HTTP, queues, timers, admin."""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import azure.functions as func
import httpx
import pytest

from devhost.azurite import Azurite
from devhost.host import DevHost
from devhost.invocations import Invocation
from devhost.queues import ensure_queue, raw_queue_client, storage_connection
from sandbox.core import Sandbox
from tests.conftest import settings_env

ROOT = Path(__file__).resolve().parents[2]
# Small visibilityTimeout and polling interval so retries happen at once.
FAST_QUEUES = {"extensions": {"queues": {"batchSize": 4, "newBatchThreshold": 2, "maxDequeueCount": 3,
                                         "visibilityTimeout": "00:00:00", "maxPollingInterval": "00:00:00.2"}}}


def app_environ(azurite: Azurite) -> dict[str, str]:
    # A timer schedule that will not fire during a test; no local.settings.json from the developer.
    return settings_env(azurite, POLL_SCHEDULE="0 0 0 1 1 *", DIGEST_SCHEDULE="0 0 0 1 1 *",
                        DETECT_SCHEDULE="0 0 0 1 1 *",
                        FRAUD_RESPONDER_LOCAL_SETTINGS=str(ROOT / "does-not-exist.json"))


@pytest.fixture
def host(azurite: Azurite) -> Iterator[DevHost]:
    with DevHost(environ=app_environ(azurite), host_json=FAST_QUEUES, http_port=0) as running:
        yield running


def put_message(azurite: Azurite, queue: str, body: bytes) -> str:
    """Put a message the way the Functions host reads it: base64 text."""
    client = raw_queue_client(storage_connection("AzureWebJobsStorage", {"AzureWebJobsStorage":
                                                                         azurite.connection_string}), queue)
    ensure_queue(client)
    return str(client.send_message(base64.b64encode(body).decode("ascii")).id)


def for_message(message_id: str) -> object:
    return lambda i: i.details.get("message_id") == message_id


def test_health_answers_200_with_storage_ok(azurite: Azurite, sandbox: Sandbox) -> None:
    # The whole local stack: Azurite for storage, the sandbox for Key Vault and the tokens.
    environ = {**app_environ(azurite), **sandbox.app_settings()}
    with DevHost(environ=environ, host_json=FAST_QUEUES, http_port=0, functions=["health"]) as host:
        response = httpx.get(f"{host.base_url}/api/health")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {"status": "ok"}  # anonymous: up or down only


def test_unknown_route_is_404_json_and_wrong_method_is_405(host: DevHost) -> None:
    missing = httpx.get(f"{host.base_url}/api/no-such-route")
    assert missing.status_code == 404
    assert "/api/health" in missing.json()["routes"]
    wrong = httpx.delete(f"{host.base_url}/api/health")
    assert wrong.status_code == 405
    assert wrong.headers["allow"] == "GET"


def test_message_put_by_hand_reaches_sync_alerts(host: DevHost, azurite: Azurite) -> None:
    message_id = put_message(azurite, "alerts-sync", json.dumps({"scope": "all"}).encode())
    first = host.invocations.wait_for(for_message(message_id))[0]  # type: ignore[arg-type]
    assert (first.function, first.trigger, first.details["dequeue_count"]) == ("sync_alerts", "queue", 1)
    assert first.succeeded or first.error  # a failure is recorded with its reason


def test_message_that_keeps_failing_ends_in_the_poison_queue(host: DevHost, azurite: Azurite) -> None:
    # sync_alerts raises until issue 4 builds it; a marker makes the message ours.
    body = json.dumps({"scope": "all", "marker": uuid.uuid4().hex}).encode()
    message_id = put_message(azurite, "alerts-sync", body)
    tries = host.invocations.wait_for(for_message(message_id), count=3)  # type: ignore[arg-type]
    assert [t.details["dequeue_count"] for t in tries] == [1, 2, 3]
    assert all(not t.succeeded for t in tries)
    connection = storage_connection("AzureWebJobsStorage", {"AzureWebJobsStorage": azurite.connection_string})
    poison = raw_queue_client(connection, "alerts-sync-poison")
    original = raw_queue_client(connection, "alerts-sync")
    expected = base64.b64encode(body).decode("ascii")
    deadline = time.monotonic() + 30
    while expected not in [m.content for m in poison.peek_messages(max_messages=32)]:
        assert time.monotonic() < deadline, "the message never reached alerts-sync-poison"
        time.sleep(0.1)
    assert expected not in [m.content for m in original.peek_messages(max_messages=32)]
    time.sleep(0.5)  # a fourth try would have happened by now
    assert len(host.invocations.matching(for_message(message_id))) == 3  # type: ignore[arg-type]


def test_timer_fires_on_demand_through_the_admin_endpoint(host: DevHost) -> None:
    response = httpx.post(f"{host.base_url}/admin/functions/poll_alerts", json={"input": ""})
    assert response.status_code == 202
    run = host.invocations.wait_for(lambda i: i.function == "poll_alerts")[0]
    assert run.trigger == "manual"
    assert run.details["past_due"] is False
    unknown = httpx.post(f"{host.base_url}/admin/functions/no_such_function", json={})
    assert unknown.status_code == 404
    http_function = httpx.post(f"{host.base_url}/admin/functions/health", json={})
    assert http_function.status_code == 400


# --- a small app of our own: behaviours the project's app does not exercise yet -----------------

def build_test_app() -> func.FunctionApp:
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @app.route(route="items/{item_id:int}", methods=["GET", "PUT"])
    async def get_item(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse(
            json.dumps({"id": req.route_params["item_id"], "q": req.params.get("q"), "method": req.method,
                        "body": req.get_body().decode()}),
            status_code=203, headers={"X-Item": "yes"}, mimetype="application/json",
        )

    @app.route(route="boom", methods=["POST"])
    def boom(req: func.HttpRequest) -> func.HttpResponse:
        raise RuntimeError("kaboom in the handler")

    return app


@pytest.fixture
def test_host() -> Iterator[DevHost]:
    with DevHost(build_test_app(), environ={}, host_json={}, http_port=0) as running:
        yield running


def test_async_function_route_params_status_and_headers(test_host: DevHost) -> None:
    host = test_host
    response = httpx.put(f"{host.base_url}/api/items/42?q=x", content=b"payload")
    assert response.status_code == 203
    assert response.headers["x-item"] == "yes"
    assert response.json() == {"id": "42", "q": "x", "method": "PUT", "body": "payload"}
    assert httpx.get(f"{host.base_url}/api/items/not-a-number").status_code == 404


def test_exception_is_500_with_short_json_and_traceback_in_log(test_host: DevHost,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    host = test_host
    with caplog.at_level(logging.ERROR, logger="devhost"):
        response = httpx.post(f"{host.base_url}/api/boom")
    assert response.status_code == 500
    assert response.json()["error"] == "internal_error"
    assert "kaboom" not in response.text
    assert "kaboom in the handler" in caplog.text and "Traceback" in caplog.text
    failed = host.invocations.wait_for(lambda i: i.function == "boom")[0]
    assert failed.error == "RuntimeError: kaboom in the handler"


def test_timer_fires_on_schedule_never_overlapping_and_late_runs_are_past_due() -> None:
    app = func.FunctionApp()
    running = {"now": 0, "max": 0}
    lock = threading.Lock()

    @app.timer_trigger(schedule="%TICK_SCHEDULE%", arg_name="timer")
    def slow_tick(timer: func.TimerRequest) -> None:
        with lock:
            running["now"] += 1
            running["max"] = max(running["max"], running["now"])
        time.sleep(1.2)  # longer than the one-second period
        with lock:
            running["now"] -= 1

    with DevHost(app, environ={"TICK_SCHEDULE": "* * * * * *"}, host_json={}, http_port=0) as host:
        runs: list[Invocation] = host.invocations.wait_for(lambda i: i.function == "slow_tick", count=2)
    assert all(run.trigger == "timer" and run.succeeded for run in runs)
    assert runs[0].details["past_due"] is False
    assert runs[1].details["past_due"] is True  # it makes up for the slot the first run overran
    assert running["max"] == 1
