"""The sandbox core over real HTTPS: routing, bearer auth, faults, recording, control endpoints."""

from __future__ import annotations

import json
import ssl
import statistics
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from sandbox.core import HttpError, Request, Response, Sandbox, Service, json_response, route, start_sandbox
from sandbox.faults import Fault
from sandbox.tokens import TokenIssuer

AUDIENCE = "https://echo.example"
TENANT = "11111111-1111-4111-8111-111111111111"


class EchoService(Service):
    """A minimal stand-in used to exercise the core without any real service's rules."""

    name = "echo"
    audiences = (AUDIENCE,)

    def reset(self) -> None:
        self.items: dict[str, Any] = dict(self.section.get("items", {}))

    @route("GET", r"/items/(?P<item>[^/]+)")
    def get_item(self, request: Request) -> Response:
        item = request.params["item"]
        if item not in self.items:
            raise HttpError(404, "ItemNotFound", f"No item {item}.")
        return json_response(200, {"id": item, "value": self.items[item], "tid": (request.claims or {}).get("tid")})

    @route("PUT", r"/items/(?P<item>[^/]+)")
    def put_item(self, request: Request) -> Response:
        self.items[request.params["item"]] = request.json()["value"]
        return json_response(200, {"ok": True, "api": request.arg("API-Version")})

    @route("GET", r"/public", auth=False)
    def public(self, request: Request) -> Response:
        return json_response(200, {"public": True})


@pytest.fixture
def echo() -> Iterator[Sandbox]:
    sandbox = start_sandbox({"echo": {"items": {"a": 1}}}, services=[EchoService])
    try:
        yield sandbox
    finally:
        sandbox.stop()


def client(sandbox: Sandbox) -> httpx.Client:
    return httpx.Client(base_url=sandbox.url("echo"), verify=ssl.create_default_context(cafile=sandbox.ca_cert_path))


def token(sandbox: Sandbox, **overrides: Any) -> str:
    args: dict[str, Any] = {"tenant": TENANT, "audience": AUDIENCE, "client_id": "app", "roles": ["Read"]}
    args.update(overrides)
    return sandbox.tokens.issue(**args)


def test_authenticated_route_answers_with_a_valid_token_over_verified_tls(echo: Sandbox) -> None:
    with client(echo) as http:
        response = http.get("/ITEMS/a", headers={"Authorization": f"Bearer {token(echo)}"})
    assert response.status_code == 200
    assert response.json() == {"id": "a", "value": 1, "tid": TENANT}


def test_tls_is_refused_without_the_sandbox_ca(echo: Sandbox) -> None:
    with httpx.Client(base_url=echo.url("echo")) as http, pytest.raises(httpx.ConnectError):
        http.get("/public")


@pytest.mark.parametrize(
    ("make_token", "reason"),
    [
        (lambda s: "", "no bearer token"),
        (lambda s: token(s, lifetime=-120), "expired"),
        (lambda s: token(s, audience="https://graph.microsoft.com"), "wrong audience"),
        (lambda s: TokenIssuer(s.url("entra") if "entra" in s.urls() else "").issue(
            tenant=TENANT, audience=AUDIENCE, client_id="app"), "bad signature"),
    ],
)
def test_bad_tokens_get_401_with_a_reason(echo: Sandbox, make_token: Any, reason: str) -> None:
    raw = make_token(echo)
    headers = {"Authorization": f"Bearer {raw}"} if raw else {}
    with client(echo) as http:
        response = http.get("/items/a", headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert reason in response.json()["error"]["message"]


def test_unknown_path_404_wrong_method_405_bad_json_400(echo: Sandbox) -> None:
    auth = {"Authorization": f"Bearer {token(echo)}"}
    with client(echo) as http:
        assert http.get("/nothing-here").status_code == 404
        assert http.delete("/items/a", headers=auth).status_code == 405
        bad = http.put("/items/b", headers=auth, content=b"{not json")
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "BadRequest"
        assert http.get("/items/zzz", headers=auth).json()["error"]["code"] == "ItemNotFound"


def test_requests_are_recorded_and_reset_restores_the_scenario(echo: Sandbox) -> None:
    auth = {"Authorization": f"Bearer {token(echo)}"}
    with client(echo) as http:
        assert http.put("/items/b", params={"api-version": "7.5"}, headers=auth, json={"value": 2}).json() == {
            "ok": True, "api": "7.5"}
        assert http.get("/items/b", headers=auth).status_code == 200
        recorded = echo.requests("echo")
        assert [(r.method, r.path, r.status) for r in recorded] == [("PUT", "/items/b", 200), ("GET", "/items/b", 200)]
        assert recorded[0].json() == {"value": 2}
        listed = http.get("/_sandbox/requests").json()["value"]
        assert [r["path"] for r in listed] == ["/items/b", "/items/b"]
        assert http.post("/_sandbox/reset").status_code == 204
        assert http.get("/items/b", headers=auth).status_code == 404
    assert [r.path for r in echo.requests()] == ["/items/b"]


def test_status_fault_with_retry_after_is_used_up(echo: Sandbox) -> None:
    echo.add_fault(Fault(service="echo", kind="status", status=429, retry_after=3, path="/public", times=2))
    with client(echo) as http:
        first, second, third = (http.get("/public") for _ in range(3))
    assert (first.status_code, second.status_code, third.status_code) == (429, 429, 200)
    assert first.headers["Retry-After"] == "3"


def test_faults_posted_to_the_control_endpoint(echo: Sandbox) -> None:
    with client(echo) as http:
        created = http.post("/_sandbox/faults", json={"kind": "malformed_json", "method": "GET"})
        assert created.status_code == 201
        malformed = http.get("/public")
        assert malformed.status_code == 200
        with pytest.raises(json.JSONDecodeError):
            malformed.json()
        assert http.post("/_sandbox/faults", json={"kind": "explode"}).status_code == 400
        http.post("/_sandbox/faults", json={"kind": "status", "status": 503, "times": None})
        assert http.get("/public").status_code == 503
        assert http.delete("/_sandbox/faults").status_code == 204
        assert http.get("/public").status_code == 200


def test_drop_fault_closes_the_connection_without_a_response(echo: Sandbox) -> None:
    echo.add_fault(Fault(service="echo", kind="drop"))
    with client(echo) as http:
        with pytest.raises(httpx.RemoteProtocolError):
            http.get("/public")
        assert http.get("/public").status_code == 200
    assert [r.status for r in echo.requests("echo")] == [0, 200]


def test_delay_fault_answers_normally_after_waiting(echo: Sandbox) -> None:
    echo.add_fault(Fault(service="echo", kind="delay", seconds=0.2))
    with client(echo) as http:
        assert http.get("/public").json() == {"public": True}


def test_pc_mfa_required_fault_answers_401_with_code_900421(echo: Sandbox) -> None:
    echo.add_fault(Fault(service="echo", kind="pc_mfa_required", path=r"^/items/"))
    with client(echo) as http:
        response = http.get("/items/a", headers={"Authorization": f"Bearer {token(echo)}"})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "900421"


def test_keep_alive_answers_do_not_wait_for_the_clients_delayed_ack(fresh_sandbox: Sandbox) -> None:
    """Headers and body are two writes: with Nagle's algorithm on, every answer on a kept-alive
    connection waited ~40 ms for the client's delayed ACK, which dominated benchmarks of many calls."""
    with httpx.Client(base_url=fresh_sandbox.url("partner_center"),
                      verify=ssl.create_default_context(cafile=str(fresh_sandbox.ca_cert_path))) as client:
        client.get("/_sandbox/urls")
        timings = []
        for _ in range(15):
            started = time.perf_counter()
            client.get("/v1/fraudEvents")  # 401 without a token: headers and a JSON body
            timings.append(time.perf_counter() - started)
    assert statistics.median(timings) < 0.025
