"""The dev host's HTTP front end answers hostile or broken requests as the Functions host does.

Raw sockets on loopback: unknown methods are 405 JSON, bad framing (a negative or malformed chunk
size, two Content-Length headers) is 400, JSON bodies of the admin trigger are parsed strictly,
and a client that hangs up early leaves no traceback in the log.
"""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Iterator

import azure.functions as func
import httpx
import pytest

from devhost.host import DevHost


def build_app() -> func.FunctionApp:
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @app.route(route="echo", methods=["POST"])
    def echo(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse(req.get_body(), mimetype="application/octet-stream")

    @app.route(route="slow", methods=["GET"])
    def slow(req: func.HttpRequest) -> func.HttpResponse:
        time.sleep(0.5)
        return func.HttpResponse(b"x" * 1_000_000, mimetype="application/octet-stream")

    @app.timer_trigger(schedule="0 0 0 1 1 *", arg_name="timer", run_on_startup=False)
    def tick(timer: func.TimerRequest) -> None:
        return None

    return app


@pytest.fixture
def host() -> Iterator[DevHost]:
    with DevHost(build_app(), environ={}, host_json={}, http_port=0) as running:
        yield running


def port_of(host: DevHost) -> int:
    return int(host.base_url.rsplit(":", 1)[1])


def exchange(host: DevHost, raw: bytes, *, timeout: float = 10.0) -> tuple[int, dict[str, str], bytes]:
    """Send ``raw`` as is; the status, headers (lower-case) and body of the answer."""
    with socket.create_connection(("127.0.0.1", port_of(host)), timeout=timeout) as sock:
        sock.sendall(raw)
        sock.shutdown(socket.SHUT_WR)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0].startswith("HTTP/1."), received[:200]
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


@pytest.mark.parametrize("method", ["BREW", "PROPFIND", "CONNECT"])
def test_unknown_methods_are_405_json(host: DevHost, method: str) -> None:
    status, headers, body = exchange(host, f"{method} /api/echo HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    assert status == 405
    assert headers["content-type"].startswith("application/json")
    assert json.loads(body)["error"] == "method_not_allowed"
    assert "POST" in headers["allow"]


@pytest.mark.parametrize("chunk_size", [b"-5", b"+5", b"0x5", b"1_0", b"zz", b"fffffffffffffffffffff"])
def test_malformed_chunk_sizes_are_400(host: DevHost, chunk_size: bytes) -> None:
    raw = (b"POST /api/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk_size +
           b"\r\nhello\r\n0\r\n\r\n")
    status, _, body = exchange(host, raw)
    assert status == 400
    assert json.loads(body)["error"] == "bad_request"


@pytest.mark.parametrize("lengths", [(b"5", b"6"), (b"5", b"5")])
def test_two_content_length_headers_are_400(host: DevHost, lengths: tuple[bytes, bytes]) -> None:
    raw = (b"POST /api/echo HTTP/1.1\r\nHost: x\r\nContent-Length: " + lengths[0] + b"\r\nContent-Length: " +
           lengths[1] + b"\r\n\r\nhello!")
    status, _, body = exchange(host, raw)
    assert status == 400
    assert "Content-Length" in json.loads(body)["message"]


def test_content_length_with_chunked_is_400(host: DevHost) -> None:
    raw = (b"POST /api/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"5\r\nhello\r\n0\r\n\r\n")
    assert exchange(host, raw)[0] == 400


def test_a_well_formed_chunked_body_still_arrives(host: DevHost) -> None:
    raw = b"POST /api/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n1\r\n!\r\n0\r\n\r\n"
    status, _, body = exchange(host, raw)
    assert (status, body) == (200, b"hello!")


HOSTILE_JSON = {
    "number-over-the-int-digit-limit": b'{"input": ' + b"9" * 5000 + b"}",
    "nested-past-the-recursion-limit": b"[" * 100_000 + b"]" * 100_000,
    "nested-too-deep": b'{"input": ' + b"[" * 200 + b"]" * 200 + b"}",
    "invalid-utf8": b'{"input": "caf\xc3\x28"}',
}


@pytest.mark.parametrize("body", list(HOSTILE_JSON.values()), ids=list(HOSTILE_JSON))
def test_admin_trigger_refuses_hostile_json_with_400(host: DevHost, body: bytes) -> None:
    response = httpx.post(f"{host.base_url}/admin/functions/tick", content=body,
                          headers={"Content-Type": "application/json"})
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "bad_request"
    assert host.invocations.snapshot() == []


def test_admin_trigger_still_fires_with_a_good_body(host: DevHost) -> None:
    assert httpx.post(f"{host.base_url}/admin/functions/tick", json={"input": ""}).status_code == 202


def test_client_that_hangs_up_early_leaves_no_traceback(host: DevHost, caplog: pytest.LogCaptureFixture,
                                                        capfd: pytest.CaptureFixture[str]) -> None:
    with caplog.at_level(logging.DEBUG):
        # a body shorter than its Content-Length, then the client is gone
        with socket.create_connection(("127.0.0.1", port_of(host)), timeout=5) as sock:
            sock.sendall(b"POST /api/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nonly a little")
        # a client that leaves while a large answer is being written
        for _ in range(3):
            sock = socket.create_connection(("127.0.0.1", port_of(host)), timeout=5)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            sock.sendall(b"GET /api/slow HTTP/1.1\r\nHost: x\r\n\r\n")
            sock.close()  # RST: the server's write fails
        time.sleep(1.5)
        assert httpx.get(f"{host.base_url}/admin/host/status").status_code == 200  # still serving
    out, err = capfd.readouterr()
    assert "Traceback" not in caplog.text + out + err, caplog.text + out + err
    assert len(host.invocations.wait_for(lambda i: i.function == "slow", count=3, timeout=10)) == 3
    assert host.invocations.matching(lambda i: i.function == "echo") == []  # a cut-short body is not run


def test_a_burst_of_connections_is_accepted_at_once(host: DevHost) -> None:
    """50 deliveries arriving together (Partner Center's webhooks after an incident) all connect at once.

    socketserver's default listen backlog is 5: the other connections' SYNs were dropped and each
    waited a TCP retransmission (1 s, then 3 s) before its request even started.
    """
    import threading

    count = 50
    barrier = threading.Barrier(count)
    connect_times: list[float] = []
    sockets: list[socket.socket] = []
    lock = threading.Lock()

    def connect() -> None:
        barrier.wait()
        started = time.perf_counter()
        sock = socket.create_connection(("127.0.0.1", port_of(host)), timeout=10)
        with lock:
            connect_times.append(time.perf_counter() - started)
            sockets.append(sock)

    threads = [threading.Thread(target=connect) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    try:
        assert len(connect_times) == count
        slow = sorted(t for t in connect_times if t >= 0.9)
        assert not slow, f"{len(slow)} of {count} connections waited a SYN retransmission: {slow[:5]}"
    finally:
        for sock in sockets:
            sock.close()
