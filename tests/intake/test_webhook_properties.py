"""Random headers and bodies at the real user function: never a 5xx, never anything kept unverified."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import azure.functions as func
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devhost.azurite import Azurite
from functions.webhook import receive_webhook
from shared.names import DELIVERIES_TABLE, SYNC_QUEUE
from shared.settings import Settings, get_settings, reset_settings_cache
from shared.storage.queues import QueueSender
from shared.storage.tables import TableStore
from tests.conftest import settings_env
from tests.intake.webhook_support import CertificateHost, Route, SigningChain, certificate_host, make_chain

CERT_PATH = "/cert/pcnotifications-dispatch.microsoft.com.cer"
USER_FUNCTION = receive_webhook._function.get_user_function()
MAX_BODY = 2048


@pytest.fixture(scope="module")
def chain() -> SigningChain:
    return make_chain()


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory, chain: SigningChain) -> Iterator[CertificateHost]:
    with certificate_host(tmp_path_factory.mktemp("cert-host")) as served:
        served.routes[CERT_PATH] = Route(body=chain.leaf.der())
        yield served


@pytest.fixture(scope="module")
def app_settings(azurite: Azurite, host: CertificateHost, chain: SigningChain,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """The function app's own settings path: environment variables read by get_settings()."""
    roots = tmp_path_factory.mktemp("roots") / "roots.pem"
    roots.write_bytes(chain.roots_pem())
    env = settings_env(azurite, WEBHOOK_CERT_HOSTS="localhost", WEBHOOK_ALLOW_PRIVATE_CERT_HOSTS="localhost",
                       WEBHOOK_TRUSTED_ROOTS=str(roots), TRUSTED_CA_BUNDLE=str(host.tls.ca_cert_path),
                       WEBHOOK_MAX_BODY_BYTES=str(MAX_BODY),
                       FRAUD_RESPONDER_LOCAL_SETTINGS=str(roots.with_name("no-local-settings.json")))
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        reset_settings_cache()
        try:
            yield get_settings()
        finally:
            reset_settings_cache()


def fraud_body(subscription: str, status: str, when: str) -> bytes:
    return json.dumps({"EventName": "azure-fraud-event-detected",
                       "ResourceUri": f"https://api.partnercenter.microsoft.com/v1/fraudEvents?SubscriptionId="
                                      f"{subscription}&EventStatus={status}",
                       "ResourceChangeUtcDate": when}).encode()


text = st.text(max_size=80)
bodies = st.one_of(
    st.binary(max_size=300),
    st.builds(fraud_body, st.uuids().map(str), st.sampled_from(["Active", "Resolved"]), text),
    st.builds(fraud_body, st.one_of(st.uuids().map(str), text), text, text),
    st.builds(lambda d: json.dumps(d).encode(), st.dictionaries(
        st.sampled_from(["EventName", "eventname", "ResourceUri", "ResourceChangeUtcDate", "AuditUri", "x"]),
        st.one_of(st.none(), st.integers(), text, st.sampled_from(["test-created", "azure-fraud-event-detected"])))),
    st.binary(min_size=MAX_BODY + 1, max_size=MAX_BODY + 50),
)


def signature_values(chain: SigningChain) -> st.SearchStrategy[str]:
    return st.one_of(
        text,
        st.binary(min_size=1, max_size=300).map(lambda b: "Signature " + base64.b64encode(b).decode()),
        st.just("Signature " + chain.sign(b"a different body")),  # a real signature, not of this body
        st.builds(lambda s: f"{s} " + chain.sign(b"{}"), st.sampled_from(["Bearer", "signature", "SIGNATURE"])),
    )


def header_sets(chain: SigningChain, host: CertificateHost) -> st.SearchStrategy[dict[str, str]]:
    """Wholly random header sets, and near-valid ones with one or two headers changed or dropped."""
    urls = st.one_of(text, st.sampled_from([
        host.url(CERT_PATH), host.url(CERT_PATH, host="127.0.0.1"), host.url("/missing.cer"),
        "https://evil.example/cert.cer", "http://localhost/cert.cer", "https://localhost:1/x.cer",
        "https://user:pw@localhost/x.cer", "https://[::1]/x.cer", "https://169.254.169.254/metadata",
    ]))
    random_values: dict[str, st.SearchStrategy[Any]] = {
        "Content-Type": st.one_of(text, st.sampled_from(["application/json", "application/json; charset=utf-8",
                                                         "text/plain", "APPLICATION/JSON"])),
        "Authorization": signature_values(chain),
        "x-ms-signature": signature_values(chain),
        "X-MS-Certificate-Url": urls,
        "X-MS-Signature-Algorithm": st.one_of(text, st.sampled_from(["rsa-sha256", "RSA-SHA256", "rsa-sha1"])),
        "Content-Length": st.integers(min_value=0, max_value=10**9).map(str),
        "X-Random": text,
    }
    wholly_random = st.fixed_dictionaries({}, optional=random_values)
    valid = {"Content-Type": "application/json; charset=utf-8", "Authorization": "Signature " + chain.sign(b"{}"),
             "X-MS-Certificate-Url": host.url(CERT_PATH), "X-MS-Signature-Algorithm": "rsa-sha256"}

    @st.composite
    def near_valid(draw: st.DrawFn) -> dict[str, str]:
        headers = dict(valid)
        for name in draw(st.sets(st.sampled_from(sorted(random_values)), max_size=2)):
            if draw(st.booleans()):
                headers[name] = draw(random_values[name])
            else:
                headers.pop(name, None)
        return headers

    return st.one_of(wholly_random, near_valid())


def test_random_requests_never_5xx_and_keep_nothing(app_settings: Settings, chain: SigningChain,
                                                    host: CertificateHost) -> None:
    queue = QueueSender(app_settings)
    queued_before = queue.count(SYNC_QUEUE)
    answered: set[int] = set()

    @settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
    @given(headers=header_sets(chain, host), body=bodies)
    def check(headers: dict[str, str], body: bytes) -> None:
        headers = {k: "".join(ch for ch in v if ch.isprintable()) for k, v in headers.items()}
        request = func.HttpRequest("POST", "http://localhost:7071/api/webhooks/partner-center",
                                   headers=headers, body=body)
        response = USER_FUNCTION(request)
        assert response.status_code < 500, response.get_body()
        assert response.status_code != 200
        document = json.loads(response.get_body())
        assert set(document) == {"error", "message"}
        answered.add(response.status_code)

    check()
    assert answered >= {400, 401, 413, 415}  # the generator reached every kind of refusal
    stored = [e for page in TableStore(app_settings).query(DELIVERIES_TABLE) for e in page.entities]
    assert stored == []
    assert queue.count(SYNC_QUEUE) == queued_before


def test_the_same_user_function_accepts_a_signed_event(app_settings: Settings, chain: SigningChain,
                                                       host: CertificateHost) -> None:
    """The property above would pass if everything were refused: a signed event must get through."""
    body = fraud_body("bbbbbbbb-0003-4000-8000-000000000003", "Active", "2026-11-21T09:00:00+00:00")
    request = func.HttpRequest("POST", "http://localhost:7071/api/webhooks/partner-center", body=body, headers={
        "Content-Type": "application/json", "Authorization": f"Signature {chain.sign(body)}",
        "X-MS-Certificate-Url": host.url(CERT_PATH), "X-MS-Signature-Algorithm": "rsa-sha256"})
    response = USER_FUNCTION(request)
    assert response.status_code == 200, response.get_body()
    assert response.mimetype == "application/json"
    delivery_id = json.loads(response.get_body())["delivery_id"]
    queue = QueueSender(app_settings)
    mine = [m for m in queue.receive(SYNC_QUEUE, visibility_timeout=1) if m.json()["delivery_id"] == delivery_id]
    assert len(mine) == 1
    queue.delete(SYNC_QUEUE, mine[0])
