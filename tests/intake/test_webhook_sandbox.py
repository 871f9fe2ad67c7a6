"""End to end: the sandbox's Partner Center signs and delivers webhooks over HTTP to the function.

The sandbox signs with its generated chain and serves the signing certificate over HTTPS from its
cert host; the receiver fetches it through the same SSRF rules as in Azure (the cert host is
allow-listed as a private host, as ``Sandbox.app_settings()`` says). Storage is Azurite.
"""

from __future__ import annotations

import http.client
import http.server
import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest

from devhost.azurite import Azurite
from functions.webhook import receive_webhook
from sandbox.core import Sandbox, start_sandbox
from sandbox.ids import SUB_FABRIKAM_PROD
from sandbox.webhooks import FRAUD_EVENT, TEST_EVENT, THRESHOLD_EVENT, Delivery, Registration, webhook_signer
from shared.names import DELIVERIES_TABLE, SYNC_QUEUE
from shared.settings import Settings, get_settings, reset_settings_cache
from shared.storage.queues import QueueSender
from shared.storage.tables import TableStore
from tests.conftest import settings_env
from tests.intake.webhook_support import make_chain

USER_FUNCTION = receive_webhook._function.get_user_function()
ROUTE = "/api/webhooks/partner-center"


class FunctionHost:
    """The HTTP trigger on a free loopback port: each request goes to the real user function."""

    def __init__(self) -> None:
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                request = func.HttpRequest("POST", f"http://localhost{self.path}", headers=dict(self.headers.items()),
                                           body=body)
                response = USER_FUNCTION(request) if self.path == ROUTE else func.HttpResponse(status_code=404)
                payload = response.get_body()
                self.send_response(response.status_code)
                self.send_header("Content-Type", response.mimetype or "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}{ROUTE}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="function-host", daemon=True)
        self._thread.start()

    def post(self, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request("POST", ROUTE, body=body, headers=headers)
            response = conn.getresponse()
            return response.status, json.loads(response.read())
        finally:
            conn.close()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


@dataclass
class Stack:
    sandbox: Sandbox
    function: FunctionHost
    settings: Settings

    @property
    def partner_center(self) -> Any:
        return self.sandbox.services["partner_center"]

    def deliver(self, event: dict[str, Any]) -> Delivery:
        delivery: Delivery = self.partner_center.dispatcher.deliver(event, self.function.url,
                                                                    ms_signature_header=False)
        assert delivery.wait(30), "the sandbox did not finish delivering"
        return delivery

    def row(self, delivery_id: str) -> dict[str, Any] | None:
        found = TableStore(self.settings).get(DELIVERIES_TABLE, delivery_id, "delivery")
        return None if found is None else dict(found)

    def take_jobs(self, delivery_id: str) -> list[dict[str, Any]]:
        """Sync jobs for this delivery, removed from the shared queue (other tests' stay)."""
        queue = QueueSender(self.settings)
        mine = [m for m in queue.receive(SYNC_QUEUE, visibility_timeout=1) if m.json()["delivery_id"] == delivery_id]
        for message in mine:
            queue.delete(SYNC_QUEUE, message)
        return [m.json() for m in mine]

    def cert_fetches(self) -> int:
        return len(self.sandbox.requests("cert_host"))


@pytest.fixture(scope="module")
def stack(azurite: Azurite, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    sandbox = start_sandbox()
    function = FunctionHost()
    try:
        env = {**settings_env(azurite), **sandbox.app_settings(),
               "FRAUD_RESPONDER_LOCAL_SETTINGS": str(tmp_path_factory.mktemp("none") / "local.settings.json")}
        with pytest.MonkeyPatch.context() as patch:
            for name, value in env.items():
                patch.setenv(name, value)
            reset_settings_cache()
            pc: Any = sandbox.services["partner_center"]
            with pc.lock:
                pc.registration = Registration(function.url, [FRAUD_EVENT, TEST_EVENT])
            yield Stack(sandbox, function, get_settings())
    finally:
        reset_settings_cache()
        function.close()
        sandbox.stop()


def signed(stack: Stack, body: bytes, **overrides: str) -> dict[str, str]:
    cert_url = f"{stack.sandbox.url('cert_host')}/cert/pcnotifications-dispatch.microsoft.com.cer"
    headers = {"Content-Type": "application/json; charset=utf-8",
               "Authorization": f"Signature {webhook_signer(stack.sandbox).sign(body)}",
               "X-MS-Certificate-Url": cert_url,
               "X-MS-Signature-Algorithm": "rsa-sha256"}
    headers.update(overrides)
    return headers


def delivery_id_of(delivery: Delivery) -> str:
    return str(json.loads(delivery.attempts[-1].response_message)["delivery_id"])


def test_signed_fraud_event_is_accepted_recorded_and_enqueued_once(stack: Stack) -> None:
    delivery = stack.partner_center.raise_fraud_event(SUB_FABRIKAM_PROD)
    assert delivery.wait(30)
    assert [a.response_code for a in delivery.attempts] == ["OK"]
    key = delivery_id_of(delivery)
    row = stack.row(key)
    assert row is not None and row["State"] == "received" and row["SubscriptionId"] == SUB_FABRIKAM_PROD
    [job] = stack.take_jobs(key)
    assert (job["scope"], job["subscription_id"], job["event_status"], job["trigger"]) == \
        ("subscription", SUB_FABRIKAM_PROD, "Active", "webhook")

    fetches = stack.cert_fetches()
    again = stack.deliver(json.loads(delivery.body))  # Partner Center delivers the same event again
    assert [a.response_code for a in again.attempts] == ["OK"]
    assert json.loads(again.attempts[-1].response_message)["duplicate"] is True
    assert stack.take_jobs(key) == []
    assert stack.cert_fetches() == fetches  # the verified certificate came from the cache


def test_test_created_and_unknown_events_are_recorded_not_enqueued(stack: Stack) -> None:
    for name in (TEST_EVENT, "invoice-ready"):
        event = {"EventName": name, "ResourceUri": f"https://api.partnercenter.microsoft.com/x/{uuid.uuid4()}",
                 "AuditUri": None, "ResourceChangeUtcDate": "2026-11-21T07:16:23.0000000+00:00"}
        delivery = stack.deliver(event)
        assert [a.response_code for a in delivery.attempts] == ["OK"]
        key = delivery_id_of(delivery)
        row = stack.row(key)
        assert row is not None and row["State"] == "recorded"
        assert stack.take_jobs(key) == []


def test_ms_signature_header_registration_is_accepted(stack: Stack) -> None:
    pc = stack.partner_center
    with pc.lock:
        pc.registration = Registration(stack.function.url, [FRAUD_EVENT, TEST_EVENT], ms_signature_header=True)
    try:
        delivery = pc.raise_fraud_event(SUB_FABRIKAM_PROD, "Investigating")
        assert delivery.wait(30)
        assert "x-ms-signature" in delivery.headers and "Authorization" not in delivery.headers
        assert [a.response_code for a in delivery.attempts] == ["OK"]
        [job] = stack.take_jobs(delivery_id_of(delivery))
        assert job["event_status"] == "Investigating"
    finally:
        with pc.lock:
            pc.registration = Registration(stack.function.url, [FRAUD_EVENT, TEST_EVENT])


def test_a_budget_threshold_event_enqueues_a_budget_sync_that_raises_the_alert(stack: Stack) -> None:
    from sandbox.ids import CUSTOMER_LITWARE
    from shared.intake.jobs import IntakeRuntime, handle_sync_message
    from shared.names import ALERTS_TABLE

    pc = stack.partner_center
    pc.set_month_to_date(CUSTOMER_LITWARE, 8100.0)  # 101 % of its budget
    with pc.lock:
        pc.registration = Registration(stack.function.url, [FRAUD_EVENT, THRESHOLD_EVENT, TEST_EVENT])
    try:
        delivery = pc.raise_threshold_event()
        assert delivery.wait(30)
        assert [a.response_code for a in delivery.attempts] == ["OK"]
        key = delivery_id_of(delivery)
        [job] = stack.take_jobs(key)
        assert (job["scope"], job["source"], job["trigger"]) == ("all", "budget", "webhook")

        run = handle_sync_message(json.dumps(job).encode(), runtime=IntakeRuntime.from_settings(stack.settings))

        assert run is not None and run.ok, run and run.as_dict()
        rows = [e for page in TableStore(stack.settings).query(ALERTS_TABLE, "source eq 'budget'")
                for e in page.entities]
        assert {(e["customer_tenant_id"], e["type"]) for e in rows if e["type"] == "BudgetThresholdExceeded"} == \
            {(CUSTOMER_LITWARE, "BudgetThresholdExceeded")}
        row = stack.row(key)
        assert row is not None and row["State"] == "synced"
    finally:
        with pc.lock:
            pc.registration = Registration(stack.function.url, [FRAUD_EVENT, TEST_EVENT])


def fresh_event() -> bytes:
    return json.dumps({"EventName": FRAUD_EVENT,
                       "ResourceUri": f"https://api.partnercenter.microsoft.com/v1/fraudEvents?SubscriptionId="
                                      f"{SUB_FABRIKAM_PROD}&EventStatus=Active",
                       "AuditUri": None,
                       "ResourceChangeUtcDate": f"2026-11-21T07:16:23.{uuid.uuid4().int % 10**7:07d}+00:00"}).encode()


def refused(stack: Stack, body: bytes, headers: dict[str, str], status: int, error: str) -> None:
    rows_before = sum(len(p.entities) for p in TableStore(stack.settings).query(DELIVERIES_TABLE))
    jobs_before = QueueSender(stack.settings).count(SYNC_QUEUE)
    answer = stack.function.post(body, headers)
    assert answer == (status, answer[1]) and answer[1]["error"] == error, answer
    assert sum(len(p.entities) for p in TableStore(stack.settings).query(DELIVERIES_TABLE)) == rows_before
    assert QueueSender(stack.settings).count(SYNC_QUEUE) == jobs_before


def test_forged_signature_is_401(stack: Stack) -> None:
    body = fresh_event()
    refused(stack, body, signed(stack, body, Authorization=f"Signature {make_chain('forger').sign(body)}"),
            401, "invalid_signature")


def test_certificate_url_on_a_host_not_allowed_is_401_without_a_request(stack: Stack) -> None:
    body = fresh_event()
    before = stack.cert_fetches()
    port = stack.sandbox.url("cert_host").rsplit(":", 1)[1]
    for url in (f"https://localhost:{port}/cert/pcnotifications-dispatch.microsoft.com.cer",
                "https://3psostorageacct.blob.core.windows.net.attacker.example/cert/x.cer"):
        refused(stack, body, signed(stack, body, **{"X-MS-Certificate-Url": url}), 401, "untrusted_certificate_url")
    assert stack.cert_fetches() == before


def test_oversized_body_is_413(stack: Stack) -> None:
    body = fresh_event()[:-1] + b', "Padding": "' + b"x" * (64 * 1024) + b'"}'
    refused(stack, body, signed(stack, body), 413, "payload_too_large")


def test_malformed_json_is_400(stack: Stack) -> None:
    body = b'{"EventName": "azure-fraud-event-detected",'
    refused(stack, body, signed(stack, body), 400, "malformed_body")


def test_wrong_content_type_is_415(stack: Stack) -> None:
    body = fresh_event()
    refused(stack, body, signed(stack, body, **{"Content-Type": "text/plain"}), 415, "unsupported_media_type")


def test_the_sandbox_root_is_what_the_receiver_trusts(stack: Stack) -> None:
    """Guards the wiring: the receiver trusts the sandbox's generated root, not the public roots."""
    assert stack.settings.webhook_trusted_roots == Path(stack.sandbox.app_settings()["WEBHOOK_TRUSTED_ROOTS"])
