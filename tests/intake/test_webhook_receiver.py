"""The webhook receiver against real Table Storage and queues (Azurite) and a real HTTPS cert host."""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from devhost.azurite import Azurite
from shared.intake.certificates import CertificateFetcher, SigningCertificates
from shared.intake.signature import TrustAnchors
from shared.intake.webhook import (
    DELIVERY_ROW,
    QueueJobSender,
    TableDeliveryLog,
    WebhookAnswer,
    WebhookReceiver,
    handle_request,
)
from shared.names import DELIVERIES_TABLE
from shared.settings import Settings, load_settings
from shared.storage.errors import StorageUnreachable
from shared.storage.queues import QueueSender
from shared.storage.tables import TableStore
from tests.conftest import REPO_ROOT, settings_env
from tests.intake.webhook_support import CertificateHost, Route, SigningChain, certificate_host, make_chain

SUBSCRIPTION = "bbbbbbbb-0001-4000-8000-000000000001"
CERT_PATH = "/cert/pcnotifications-dispatch.microsoft.com.cer"


@pytest.fixture(scope="module")
def chain() -> SigningChain:
    return make_chain()


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory, chain: SigningChain) -> Iterator[CertificateHost]:
    with certificate_host(tmp_path_factory.mktemp("cert-host")) as served:
        served.routes[CERT_PATH] = Route(body=chain.leaf.der())
        yield served


@pytest.fixture(scope="module")
def roots_file(tmp_path_factory: pytest.TempPathFactory, chain: SigningChain) -> Path:
    path = tmp_path_factory.mktemp("roots") / "roots.pem"
    path.write_bytes(chain.roots_pem())
    return path


@pytest.fixture
def webhook_settings(azurite: Azurite, host: CertificateHost, roots_file: Path) -> Settings:
    env = settings_env(azurite, WEBHOOK_CERT_HOSTS="localhost", WEBHOOK_ALLOW_PRIVATE_CERT_HOSTS="localhost",
                       WEBHOOK_TRUSTED_ROOTS=str(roots_file), TRUSTED_CA_BUNDLE=str(host.tls.ca_cert_path),
                       WEBHOOK_MAX_BODY_BYTES="4096")
    return load_settings(env, local_settings=REPO_ROOT / "does-not-exist.json")


class FailingOnce:
    """The crash seam: the first enqueue fails as an unreachable queue would; later ones go through."""

    def __init__(self, inner: QueueJobSender) -> None:
        self.inner = inner
        self.failures = 0

    def send_json(self, document: Mapping[str, Any]) -> None:
        if self.failures == 0:
            self.failures += 1
            raise StorageUnreachable("cannot reach Queue Storage (injected between insert and enqueue)")
        self.inner.send_json(document)


def signed_headers(chain: SigningChain, host: CertificateHost, body: bytes,
                   overrides: dict[str, str] | None = None) -> dict[str, str]:
    """Headers as Partner Center sends them; an override of "" drops that header."""
    sent = {
        "Content-Type": "application/json; charset=utf-8",
        "Authorization": f"Signature {chain.sign(body)}",
        "X-MS-Certificate-Url": host.url(CERT_PATH),
        "X-MS-Signature-Algorithm": "rsa-sha256",
    }
    sent.update(overrides or {})
    return {k: v for k, v in sent.items() if v}


@dataclass
class Rig:
    settings: Settings
    receiver: WebhookReceiver
    chain: SigningChain
    host: CertificateHost
    queue: str
    jobs: Any

    def post(self, body: bytes, *, headers: dict[str, str] | None = None,
             sign_with: SigningChain | None = None) -> WebhookAnswer:
        sent = signed_headers(sign_with or self.chain, self.host, body, headers)
        return self.receiver.receive(headers={k.lower(): v for k, v in sent.items()}, body=body)

    def messages(self) -> list[dict[str, Any]]:
        return [m.json() for m in QueueSender(self.settings).peek(self.queue)]

    def deliveries(self) -> list[dict[str, Any]]:
        return [dict(e) for page in TableStore(self.settings).query(DELIVERIES_TABLE) for e in page.entities]


def make_rig(settings: Settings, chain: SigningChain, host: CertificateHost, *,
             fail_first_enqueue: bool = False, max_body_bytes: int | None = None) -> Rig:
    queue = "sync-" + uuid.uuid4().hex[:12]
    jobs: Any = QueueJobSender(QueueSender(settings), queue=queue)
    if fail_first_enqueue:
        jobs = FailingOnce(jobs)
    fetcher = CertificateFetcher(allowed_hosts=["localhost"], private_hosts=["localhost"],
                                 tls_verify=str(host.tls.ca_cert_path))
    certificates = SigningCertificates(fetcher=fetcher, anchors=TrustAnchors.from_file(settings.webhook_trusted_roots))
    receiver = WebhookReceiver(certificates=certificates, deliveries=TableDeliveryLog(TableStore(settings)), jobs=jobs,
                               max_body_bytes=max_body_bytes or settings.webhook_max_body_bytes)
    return Rig(settings, receiver, chain, host, queue, jobs)


@pytest.fixture
def rig(webhook_settings: Settings, chain: SigningChain, host: CertificateHost) -> Rig:
    host.requests.clear()
    return make_rig(webhook_settings, chain, host)


def fraud_event(subscription: str = SUBSCRIPTION, status: str = "Active", when: str | None = None) -> bytes:
    return json.dumps({
        "EventName": "azure-fraud-event-detected",
        "ResourceUri": f"https://api.partnercenter.microsoft.com/v1/fraudEvents?SubscriptionId={subscription}"
                       f"&EventStatus={status}",
        "AuditUri": None,
        "ResourceChangeUtcDate": when or "2026-11-21T07:16:23.3520276+00:00",
    }).encode()


# --- accepted events -------------------------------------------------------------------------


def test_fraud_event_is_recorded_and_one_sync_job_enqueued(rig: Rig) -> None:
    answer = rig.post(fraud_event())
    assert answer.status == 200, answer.body
    [row] = rig.deliveries()
    assert row["State"] == "received"  # the sync job marks it synced when it has run
    assert row["SubscriptionId"] == SUBSCRIPTION
    assert (row["PartitionKey"], row["RowKey"]) == (answer.body["delivery_id"], DELIVERY_ROW)
    [job] = rig.messages()
    requested_at = job.pop("requested_at")
    assert requested_at.endswith("Z")
    assert job == {"scope": "subscription", "subscription_id": SUBSCRIPTION, "source": "partner_center",
                   "event_status": "Active", "trigger": "webhook", "delivery_id": answer.body["delivery_id"],
                   "schema_version": 1}


def test_duplicate_delivery_is_acknowledged_and_enqueues_nothing(rig: Rig) -> None:
    first, second = rig.post(fraud_event()), rig.post(fraud_event())
    assert (first.status, second.status) == (200, 200)
    assert second.body["duplicate"] is True
    assert second.body["delivery_id"] == first.body["delivery_id"]
    assert len(rig.deliveries()) == 1
    assert len(rig.messages()) == 1


def test_a_new_change_date_is_a_new_delivery(rig: Rig) -> None:
    rig.post(fraud_event(when="2026-11-21T07:16:23+00:00"))
    rig.post(fraud_event(when="2026-11-21T08:00:00+00:00"))
    assert len(rig.deliveries()) == 2
    assert len(rig.messages()) == 2


def test_test_created_is_recorded_not_enqueued(rig: Rig) -> None:
    body = json.dumps({"EventName": "test-created", "ResourceUri": "https://api.partnercenter.microsoft.com/webhooks/"
                       "v1/registration/validationEvents/c0ffee", "ResourceName": "test", "AuditUri": None,
                       "ResourceChangeUtcDate": "2026-11-21T07:16:23+00:00"}).encode()
    answer = rig.post(body)
    assert (answer.status, answer.body["status"]) == (200, "recorded")
    [row] = rig.deliveries()
    assert (row["EventName"], row["State"]) == ("test-created", "recorded")
    assert rig.messages() == []


def test_unknown_event_is_recorded_not_enqueued(rig: Rig) -> None:
    body = json.dumps({"EventName": "invoice-ready", "ResourceUri": "https://api.partnercenter.microsoft.com/v1/x",
                       "ResourceChangeUtcDate": "2026-11-21T07:16:23+00:00"}).encode()
    assert rig.post(body).status == 200
    assert [r["State"] for r in rig.deliveries()] == ["recorded"]
    assert rig.messages() == []


def test_x_ms_signature_header_and_lower_case_keys_are_accepted(rig: Rig) -> None:
    body = json.dumps({"eventName": "azure-fraud-event-detected",
                       "resourceUri": f"https://api.partnercenter.microsoft.com/v1/fraudEvents?subscriptionId={SUBSCRIPTION}",
                       "resourceChangeUtcDate": "2026-11-21T07:16:23+00:00"}).encode()
    answer = rig.post(body, headers={"Authorization": "", "x-ms-signature": f"Signature {rig.chain.sign(body)}"})
    assert answer.status == 200, answer.body
    assert rig.messages()[0]["event_status"] is None


# --- crash safety ----------------------------------------------------------------------------


def test_redelivery_after_a_failed_enqueue_enqueues_again(webhook_settings: Settings, chain: SigningChain,
                                                          host: CertificateHost) -> None:
    rig = make_rig(webhook_settings, chain, host, fail_first_enqueue=True)
    with pytest.raises(StorageUnreachable):
        rig.post(fraud_event())
    assert rig.deliveries() == []  # forgotten, so the retry is not taken for a duplicate
    assert rig.messages() == []

    retried = rig.post(fraud_event())  # Partner Center retries the same event
    assert retried.status == 200 and retried.body["status"] == "enqueued"
    assert [r["State"] for r in rig.deliveries()] == ["received"]
    assert len(rig.messages()) == 1

    assert rig.post(fraud_event()).body["status"] == "duplicate"
    assert len(rig.messages()) == 1


@pytest.mark.parametrize(("age_minutes", "enqueued_again"), [(1, False), (11, True)])
def test_a_worker_that_died_between_recording_and_enqueuing(webhook_settings: Settings, chain: SigningChain,
                                                            host: CertificateHost, age_minutes: int,
                                                            enqueued_again: bool) -> None:
    """The row exists but no job was enqueued: a young row is taken to be in flight, an old one
    (still not synced after REENQUEUE_AFTER) is enqueued again, once."""
    from datetime import UTC, datetime, timedelta

    from shared.intake.webhook import TableDeliveryLog, parse_event

    rig = make_rig(webhook_settings, chain, host)
    body = fraud_event()
    key = parse_event(body).dedupe_key
    TableDeliveryLog(TableStore(rig.settings)).insert_once(key, {
        "State": "received", "ReceivedAt": (datetime.now(UTC) - timedelta(minutes=age_minutes)).isoformat()})

    answer = rig.post(body)
    assert answer.status == 200
    assert answer.body["status"] == ("enqueued" if enqueued_again else "duplicate")
    assert len(rig.messages()) == (1 if enqueued_again else 0)
    assert rig.post(body).body["status"] == "duplicate"  # re-enqueued once, not on every redelivery
    assert len(rig.messages()) == (1 if enqueued_again else 0)


def test_storage_failure_answers_503_so_partner_center_retries(azurite: Azurite, webhook_settings: Settings,
                                                               chain: SigningChain, host: CertificateHost) -> None:
    import base64

    wrong_key = base64.b64encode(b"not the account key").decode()
    storage = re.sub(r"AccountKey=[^;]+", f"AccountKey={wrong_key}", azurite.connection_string)
    env = settings_env(azurite, AzureWebJobsStorage=storage, WEBHOOK_CERT_HOSTS="localhost",
                       WEBHOOK_ALLOW_PRIVATE_CERT_HOSTS="localhost",
                       WEBHOOK_TRUSTED_ROOTS=str(webhook_settings.webhook_trusted_roots),
                       TRUSTED_CA_BUNDLE=str(webhook_settings.trusted_ca_bundle))
    refused_storage = load_settings(env, local_settings=REPO_ROOT / "does-not-exist.json")
    body = fraud_event()
    answer = handle_request(signed_headers(chain, host, body), lambda: body, settings=refused_storage)
    assert (answer.status, answer.body["error"]) == (503, "storage_unavailable")
    assert "AccountKey" not in answer.json()


# --- rejections: nothing stored, nothing enqueued --------------------------------------------


def assert_nothing_kept(rig: Rig) -> None:
    assert rig.deliveries() == []
    assert rig.messages() == []


def test_forged_signature_is_401(rig: Rig) -> None:
    answer = rig.post(fraud_event(), sign_with=make_chain("forger"))
    assert (answer.status, answer.body["error"]) == (401, "invalid_signature")
    assert_nothing_kept(rig)


def test_body_changed_after_signing_is_401(rig: Rig) -> None:
    body = fraud_event()
    signature = rig.chain.sign(body)
    answer = rig.post(fraud_event(subscription="bbbbbbbb-0002-4000-8000-000000000002"),
                      headers={"Authorization": f"Signature {signature}"})
    assert answer.status == 401
    assert_nothing_kept(rig)


def test_certificate_from_a_host_not_allowed_is_401_without_fetching(rig: Rig) -> None:
    for url in (rig.host.url(CERT_PATH, host="127.0.0.1"), "https://evil.example/cert.cer",
                "http://localhost/cert.cer"):
        answer = rig.post(fraud_event(), headers={"X-MS-Certificate-Url": url})
        assert (answer.status, answer.body["error"]) == (401, "untrusted_certificate_url")
    assert rig.host.requests == []
    assert_nothing_kept(rig)


def test_certificate_not_chaining_to_the_roots_is_401(rig: Rig) -> None:
    other = make_chain("impostor")
    rig.host.routes["/impostor.cer"] = Route(body=other.leaf.der())
    answer = rig.post(fraud_event(), sign_with=other, headers={"X-MS-Certificate-Url": rig.host.url("/impostor.cer")})
    assert (answer.status, answer.body["error"]) == (401, "untrusted_certificate")
    assert_nothing_kept(rig)


def test_oversized_body_is_413(rig: Rig) -> None:
    body = fraud_event()[:-1] + b', "Padding": "' + b"x" * 5000 + b'"}'
    answer = rig.post(body)
    assert (answer.status, answer.body["error"]) == (413, "payload_too_large")
    assert rig.host.requests == []
    assert_nothing_kept(rig)


def test_declared_oversize_is_refused_before_the_body_is_read(webhook_settings: Settings) -> None:
    def body() -> bytes:
        raise AssertionError("the body was read")

    answer = handle_request({"Content-Length": "999999", "Content-Type": "application/json"}, body,
                            settings=webhook_settings)
    assert answer.status == 413


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", ""])
def test_non_json_content_type_is_415(rig: Rig, content_type: str) -> None:
    answer = rig.post(fraud_event(), headers={"Content-Type": content_type})
    assert (answer.status, answer.body["error"]) == (415, "unsupported_media_type")
    assert_nothing_kept(rig)


@pytest.mark.parametrize("body", [
    b"{not json", b"[]", b'{"EventName": 5}', b"\xff\xfe", b'{"EventName": "azure-fraud-event-detected"}',
    b'{"EventName": "x", "Nested": ' + b"[" * 200 + b"]" * 200 + b"}",  # deeper than any payload needs
    b'{"EventName": "caf\xc3\x28"}',  # invalid UTF-8 inside a string
    b'{"EventName": NaN}', b"\xef\xbb\xbf{}",
], ids=["syntax", "array", "number-name", "not-utf8", "fields-missing", "deeper-than-limit",
        "bad-utf8-in-string", "nan", "bom"])
def test_malformed_body_is_400(rig: Rig, body: bytes) -> None:
    answer = rig.post(body)
    assert (answer.status, answer.body["error"]) == (400, "malformed_body")
    assert_nothing_kept(rig)


@pytest.mark.parametrize("body", [
    b'{"EventName": "azure-fraud-event-detected", "HitCount": ' + b"9" * 5000 + b"}",
    b'{"EventName": "x", "Nested": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    fraud_event()[:-1] + b', "Nested": ' + b"[" * 200 + b"]" * 200 + b"}",
], ids=["number-over-the-int-digit-limit", "nested-past-the-recursion-limit", "valid-event-nested-too-deep"])
def test_hostile_json_within_the_size_limit_is_400(webhook_settings: Settings, chain: SigningChain,
                                                   host: CertificateHost, body: bytes) -> None:
    rig = make_rig(webhook_settings, chain, host, max_body_bytes=1 << 20)
    answer = rig.post(body)
    assert (answer.status, answer.body["error"]) == (400, "malformed_body"), answer.body
    assert_nothing_kept(rig)


@pytest.mark.parametrize("subscription", ["not-a-guid", "", "bbbbbbbb-0001-4000-8000-00000000000"])
def test_fraud_event_without_a_guid_subscription_is_400(rig: Rig, subscription: str) -> None:
    answer = rig.post(fraud_event(subscription=subscription))
    assert (answer.status, answer.body["error"]) == (400, "invalid_resource_uri")
    assert_nothing_kept(rig)


@pytest.mark.parametrize("missing", ["Authorization", "X-MS-Certificate-Url", "X-MS-Signature-Algorithm"])
def test_missing_signature_header_is_400(rig: Rig, missing: str) -> None:
    answer = rig.post(fraud_event(), headers={missing: ""})
    assert (answer.status, answer.body["error"]) == (400, "missing_header")
    assert_nothing_kept(rig)


def test_rejections_are_logged_with_the_reason_but_not_the_signature_or_body(
        rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    body = fraud_event()
    forged = make_chain("forger").sign(body)
    with caplog.at_level(logging.INFO, logger="shared.intake"):
        rig.post(body, headers={"Authorization": f"Signature {forged}"})
    text = caplog.text
    assert "invalid_signature" in text
    assert forged not in text
    assert SUBSCRIPTION not in text and "ResourceUri" not in text


def test_a_failed_re_enqueue_of_a_stale_delivery_is_re_enqueued_on_the_retry(
        webhook_settings: Settings, chain: SigningChain, host: CertificateHost) -> None:
    """A stale row's re-enqueue fails (503): Partner Center's retry must enqueue again, not hear "duplicate"."""
    from datetime import UTC, datetime, timedelta

    from shared.intake.webhook import parse_event

    rig = make_rig(webhook_settings, chain, host, fail_first_enqueue=True)
    body = fraud_event()
    key = parse_event(body).dedupe_key
    TableDeliveryLog(TableStore(rig.settings)).insert_once(key, {
        "State": "received", "ReceivedAt": (datetime.now(UTC) - timedelta(minutes=30)).isoformat()})

    with pytest.raises(StorageUnreachable):
        rig.post(body)  # the stale row's job could not be enqueued again: answered 503
    assert rig.messages() == []

    retried = rig.post(body)
    assert (retried.status, retried.body["status"]) == (200, "enqueued")
    assert len(rig.messages()) == 1
    assert rig.post(body).body["status"] == "duplicate"
    assert len(rig.messages()) == 1
