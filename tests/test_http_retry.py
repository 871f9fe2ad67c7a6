"""The shared retry policy against a real local HTTP server that answers from a script.

Delays are recorded by an injected sleep (and a fake clock it advances), so nothing waits for
Retry-After or backoff for real.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from shared.http import (
    BadRequest,
    MalformedResponse,
    MicrosoftApiError,
    MicrosoftClient,
    NotFound,
    PartnerCenterMfaRequired,
    RetryPolicy,
    Throttled,
    TransientError,
    Unauthorized,
    parse_retry_after,
)


@dataclass
class Step:
    """What the server does for one request: answer, stall past the read timeout, or hang up."""

    status: int = 200
    body: bytes = b"[]"
    headers: dict[str, str] = field(default_factory=dict)
    action: str = "answer"  # answer | stall | drop


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]


class ScriptedServer:
    """A loopback HTTP/1.1 server on a free port that plays ``steps`` in order (then 200 [])."""

    def __init__(self) -> None:
        self.steps: list[Step] = []
        self.seen: list[Seen] = []
        self.release = threading.Event()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                owner.seen.append(Seen(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}))
                step = owner.steps.pop(0) if owner.steps else Step()
                if step.action == "drop":
                    self.close_connection = True
                    return
                if step.action == "stall":
                    owner.release.wait(5)
                    self.close_connection = True
                    return
                self.send_response(step.status)
                for name, value in step.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(step.body)))
                self.end_headers()
                self.wfile.write(step.body)

            do_GET = do_POST = do_PATCH = _handle

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def stop(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


class FakeClock:
    """A monotonic clock that moves only when the client sleeps; records every delay."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.delays: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.delays.append(seconds)
        self.now += seconds


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    instance = ScriptedServer()
    try:
        yield instance
    finally:
        instance.stop()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make_client(server: ScriptedServer, clock: FakeClock, **policy: Any) -> MicrosoftClient:
    retry = RetryPolicy(**{"read_timeout": 0.3, **policy})
    return MicrosoftClient(server.url, token=lambda: "sekrit-token-value", retry=retry, sleep=clock.sleep,
                           clock=clock, service="Partner Center")


def pc_error(status: int, code: str, description: str) -> bytes:
    return json.dumps({"code": code, "description": description, "data": [], "source": "PartnerFD"}).encode()


THROTTLE_BODY = json.dumps({"statusCode": 429, "message": "Rate limit is exceeded. Try again in 7 seconds."}).encode()


def test_retry_after_seconds_is_honoured_then_the_call_succeeds(server: ScriptedServer, clock: FakeClock) -> None:
    server.steps = [Step(429, THROTTLE_BODY, {"Retry-After": "7"}), Step(200, b'[{"eventId": "e1"}]')]
    with make_client(server, clock) as client:
        assert client.request_json("GET", "/v1/fraudEvents") == [{"eventId": "e1"}]
    assert clock.delays == [7.0]
    assert len(server.seen) == 2


def test_retry_after_as_http_date_is_honoured(server: ScriptedServer, clock: FakeClock) -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=20), usegmt=True)
    server.steps = [Step(503, b"{}", {"Retry-After": when}), Step(200)]
    with make_client(server, clock) as client:
        client.request("GET", "/v1/fraudEvents")
    assert len(clock.delays) == 1
    assert 15 <= clock.delays[0] <= 20


def test_a_second_throttle_still_waits_at_least_retry_after(server: ScriptedServer, clock: FakeClock) -> None:
    server.steps = [Step(429, THROTTLE_BODY, {"Retry-After": "2"}) for _ in range(3)] + [Step(200)]
    with make_client(server, clock, backoff_base=1.0, backoff_max=100.0) as client:
        client.request("GET", "/v1/fraudEvents")
    assert len(clock.delays) == 3
    assert all(delay >= 2.0 for delay in clock.delays)


def test_retry_after_beyond_the_time_budget_fails_fast_with_throttled(
    server: ScriptedServer, clock: FakeClock,
) -> None:
    server.steps = [Step(429, THROTTLE_BODY, {"Retry-After": "120"})]
    with make_client(server, clock, total_seconds=60) as client, pytest.raises(Throttled) as caught:
        client.request("GET", "/v1/fraudEvents")
    assert caught.value.retry_after == 120
    assert caught.value.status == 429
    assert clock.delays == []  # no waiting: the queue job retries later
    assert len(server.seen) == 1
    assert "Rate limit is exceeded" in str(caught.value)


def test_server_errors_back_off_with_bounded_full_jitter(server: ScriptedServer, clock: FakeClock) -> None:
    server.steps = [Step(500, pc_error(500, "5000", "boom")), Step(502, b"{}"), Step(504, b"{}"), Step(200)]
    with make_client(server, clock, backoff_base=1.0, backoff_max=3.0) as client:
        client.request("GET", "/v1/fraudEvents")
    assert len(clock.delays) == 3
    for retry_number, delay in enumerate(clock.delays, start=1):
        assert 0 <= delay <= min(3.0, 1.0 * 2 ** (retry_number - 1))


def test_backoff_never_exceeds_its_cap() -> None:
    policy = RetryPolicy(backoff_base=0.5, backoff_max=4.0)
    assert policy.backoff(30, rng=lambda: 1.0) == 4.0
    assert policy.backoff(1, rng=lambda: 1.0) == 0.5
    assert policy.backoff(3, rng=lambda: 0.0) == 0.0


def test_attempts_are_capped_and_the_last_error_is_raised(server: ScriptedServer, clock: FakeClock) -> None:
    server.steps = [Step(500, pc_error(500, "5000", "still broken")) for _ in range(10)]
    with make_client(server, clock, max_attempts=3) as client, pytest.raises(TransientError) as caught:
        client.request("GET", "/v1/fraudEvents")
    assert len(server.seen) == 3
    assert len(clock.delays) == 2
    assert caught.value.status == 500
    assert "still broken" in str(caught.value)


def test_the_time_budget_stops_retries_before_the_attempt_cap(server: ScriptedServer, clock: FakeClock) -> None:
    server.steps = [Step(503, b"{}", {"Retry-After": "4"}) for _ in range(10)]
    with make_client(server, clock, max_attempts=10, total_seconds=10) as client, pytest.raises(Throttled) as caught:
        client.request("GET", "/v1/fraudEvents")
    assert sum(clock.delays) < 10
    assert len(server.seen) == 3  # t=0, t=4, t=8; the next wait would end past the budget
    assert caught.value.retry_after >= 4


def test_request_id_is_reused_after_a_timeout_and_renewed_after_a_response(
    server: ScriptedServer, clock: FakeClock,
) -> None:
    server.steps = [Step(action="stall"), Step(500, b"{}"), Step(200)]
    with make_client(server, clock, read_timeout=0.2) as client:
        client.request("POST", "/v1/fraudEvents/subscription/s/status", json={"EventIds": []})
    ids = [seen.headers["ms-requestid"] for seen in server.seen]
    assert len(ids) == 3
    assert ids[0] == ids[1]  # retry after a timeout: the same request
    assert ids[2] != ids[1]  # after a response: a new one
    correlation = {seen.headers["ms-correlationid"] for seen in server.seen}
    assert len(correlation) == 1


def test_request_id_is_reused_after_a_dropped_connection(server: ScriptedServer, clock: FakeClock) -> None:
    server.steps = [Step(action="drop"), Step(200)]
    with make_client(server, clock) as client:
        client.request("GET", "/v1/fraudEvents")
    assert server.seen[0].headers["ms-requestid"] == server.seen[1].headers["ms-requestid"]


def test_each_logical_call_gets_a_new_correlation_id(server: ScriptedServer, clock: FakeClock) -> None:
    with make_client(server, clock) as client:
        client.request("GET", "/v1/fraudEvents")
        client.request("GET", "/v1/fraudEvents")
    assert server.seen[0].headers["ms-correlationid"] != server.seen[1].headers["ms-correlationid"]
    assert server.seen[0].headers["authorization"] == "Bearer sekrit-token-value"


def test_connection_refused_becomes_transient_error_after_retries(clock: FakeClock) -> None:
    probe = ScriptedServer()
    url = probe.url
    probe.stop()  # nothing listens on this port any more
    client = MicrosoftClient(url, retry=RetryPolicy(max_attempts=2), sleep=clock.sleep, clock=clock)
    with client, pytest.raises(TransientError) as caught:
        client.request("GET", "/v1/fraudEvents")
    assert caught.value.status == 0
    assert "connection failed" in str(caught.value)


def test_malformed_json_in_a_success_raises_malformed_response(server: ScriptedServer, clock: FakeClock) -> None:
    server.steps = [Step(200, b'[{"eventId": "e1",')]
    with make_client(server, clock) as client, pytest.raises(MalformedResponse) as caught:
        client.request_json("GET", "/v1/fraudEvents")
    assert caught.value.status == 200
    assert caught.value.correlation_id


def test_mfa_required_401_is_its_own_error_and_not_retried(server: ScriptedServer, clock: FakeClock) -> None:
    server.steps = [Step(401, pc_error(401, "900421", "MFA is required for this App+User call."))]
    with make_client(server, clock) as client, pytest.raises(PartnerCenterMfaRequired) as caught:
        client.request("GET", "/v1/fraudEvents")
    assert isinstance(caught.value, Unauthorized)
    assert caught.value.code == "900421"
    assert "MFA" in str(caught.value)
    assert len(server.seen) == 1


def test_client_errors_are_typed_and_never_echo_the_token(server: ScriptedServer, clock: FakeClock) -> None:
    server.steps = [Step(404, pc_error(404, "800111", "Subscription not found.")), Step(400, b"not json")]
    with make_client(server, clock) as client:
        with pytest.raises(NotFound) as not_found:
            client.request("GET", "/v1/customers/c/subscriptions/s")
        with pytest.raises(BadRequest) as bad:
            client.request("POST", "/v1/x", json={"a": 1})
    assert not_found.value.code == "800111"
    assert "Subscription not found" in str(not_found.value)
    assert "sekrit" not in str(not_found.value) and "sekrit" not in str(bad.value)
    assert len(server.seen) == 2


def test_unexpected_success_status_is_an_error(server: ScriptedServer, clock: FakeClock) -> None:
    server.steps = [Step(202, b"{}"), Step(202, b"{}")]
    with make_client(server, clock) as client:
        with pytest.raises(MicrosoftApiError, match="unexpected success status 202"):
            client.request("POST", "/v1/x", expected=(200,))
        assert client.request("POST", "/v1/x", expected=(200, 202)).status_code == 202


def test_parse_retry_after() -> None:
    now = datetime(2024, 1, 1, tzinfo=UTC)
    assert parse_retry_after("12", now=now) == 12
    assert parse_retry_after("Mon, 01 Jan 2024 00:00:30 GMT", now=now) == 30
    assert parse_retry_after("Sun, 31 Dec 2023 00:00:00 GMT", now=now) == 0
    assert parse_retry_after("soon", now=now) is None
    assert parse_retry_after(None) is None


def test_a_server_that_never_answers_times_out_on_every_attempt(server: ScriptedServer, clock: FakeClock) -> None:
    server.steps = [Step(action="stall"), Step(action="stall")]
    with make_client(server, clock, max_attempts=2, read_timeout=0.2) as client, \
            pytest.raises(TransientError, match="timed out"):
        client.request("GET", "/v1/fraudEvents")
    assert len(server.seen) == 2
