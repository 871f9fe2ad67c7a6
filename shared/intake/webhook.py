"""The Partner Center webhook receiver: verify, record once, enqueue one alerts-sync job.

Order of work, cheapest and least trusting first: the size limit (413), the content type (415),
the signature headers (400), the body's shape (400), the certificate URL rules (401), the
signing certificate and the signature (401). Only then is anything stored or enqueued.

Crash safety (at-least-once), with two storage calls on the request path (the same as the bare
work: one insert, one queue put): the delivery row is inserted once with state "received", then
the job is enqueued. If the enqueue fails, the row is deleted again and the answer is 503, so
Partner Center's retry enqueues it. The sync job marks the row "synced" when it has run. If the
worker dies between insert and enqueue, a redelivery finding the row still "received" after
REENQUEUE_AFTER enqueues again (a second sync job is harmless, a lost one is not); younger rows
are taken to be in flight, and the poller finds the alerts within one interval regardless. The
row's time is updated only after that send succeeds, so a failed re-enqueue (503) stays stale
and Partner Center's retry enqueues again instead of being told "duplicate".
No Partner Center call is made here; the sync job does that.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import parse_qsl, urlsplit

from shared.formats import is_guid
from shared.intake.signature import WebhookRejected, parse_signature_headers, verify_body_signature
from shared.jobs import SyncJob
from shared.jsonbody import JsonBodyError, parse_json_body
from shared.logs import add_context, contextual
from shared.names import DELIVERIES_TABLE, SYNC_QUEUE

if TYPE_CHECKING:
    from shared.settings import Settings
    from shared.storage.queues import QueueSender
    from shared.storage.tables import TableStore

logger = logging.getLogger(__name__)

FRAUD_EVENT = "azure-fraud-event-detected"
TEST_EVENT = "test-created"
THRESHOLD_EVENT = "usagerecords-thresholdExceeded"
"""A customer's month-to-date usage passed its spending budget: sync the budget source."""

STATE_RECEIVED = "received"
"""Verified and recorded, its alerts-sync job enqueued (or, after a crash between the two, not)."""
STATE_SYNCED = "synced"
"""Its alerts-sync job has run (the sync job marks it)."""
STATE_RECORDED = "recorded"
"""Recorded only (test-created and unknown events): nothing to enqueue."""
REENQUEUE_AFTER = timedelta(minutes=10)
"""A redelivered event whose first delivery is still not synced after this long is enqueued again:
the worker died between recording it and enqueuing its job. Younger ones are taken to be in flight
(and the poller finds the alerts within one interval anyway)."""

_EVENT_STATUS = re.compile(r"[A-Za-z]{1,32}")
_MAX_FIELD = 2048


# ---------------------------------------------------------------------------------------------
# Ports: the storage the receiver needs (adapters over the Table store and queue sender).


class DeliveryLog(Protocol):
    """Webhook deliveries by dedupe key."""

    def insert_once(self, key: str, fields: Mapping[str, Any]) -> bool:
        """Insert the row; False when a row with this key already exists."""

    def state(self, key: str) -> tuple[str, datetime | None] | None:
        """The row's state and when it was (last) enqueued, or None when there is no row."""

    def touch(self, key: str, when: datetime) -> None:
        """Record that the row's job was enqueued again at ``when``."""

    def delete(self, key: str) -> None:
        """Forget a delivery whose job could not be enqueued, so the retry enqueues it."""


class JobSender(Protocol):
    """The alerts-sync queue."""

    def send_json(self, document: Mapping[str, Any]) -> None: ...


class SigningCertificateSource(Protocol):
    """Where verified signing certificates come from (certificates.SigningCertificates)."""

    def check_url(self, url: str) -> None: ...

    def verified_leaf(self, url: str) -> Any: ...


# ---------------------------------------------------------------------------------------------
# The request and the answer, independent of azure.functions.


@dataclass(frozen=True)
class WebhookAnswer:
    """What to send back: a status and a small JSON document."""

    status: int
    body: dict[str, Any]

    def json(self) -> str:
        return json.dumps(self.body)


@dataclass(frozen=True)
class WebhookEvent:
    """A verified webhook's fields (the documented payload: keys matched case-insensitively)."""

    event_name: str
    resource_uri: str
    resource_change_utc_date: str
    audit_uri: str | None

    @property
    def dedupe_key(self) -> str:
        """sha256 of (EventName, ResourceUri, ResourceChangeUtcDate): the payload has no event id."""
        material = json.dumps([self.event_name, self.resource_uri, self.resource_change_utc_date])
        return hashlib.sha256(material.encode("utf-8")).hexdigest()


def _reject(status: int, code: str, message: str) -> WebhookRejected:
    return WebhookRejected(status, code, message)


def _is_json_content_type(value: str) -> bool:
    media_type = value.split(";", 1)[0].strip().lower()
    return media_type == "application/json"


def parse_event(body: bytes) -> WebhookEvent:
    """The webhook payload: a JSON object with EventName, ResourceUri and ResourceChangeUtcDate."""
    try:
        document = parse_json_body(body)
    except JsonBodyError as exc:
        raise _reject(400, "malformed_body", str(exc)) from None
    if not isinstance(document, dict):
        raise _reject(400, "malformed_body", "the body must be a JSON object")
    fields = {str(k).lower(): v for k, v in document.items()}

    def text(name: str, *, required: bool = True) -> str | None:
        value = fields.get(name.lower())
        if value is None and not required:
            return None
        if not isinstance(value, str) or not value.strip():
            raise _reject(400, "malformed_body", f"{name} must be a non-empty string")
        if len(value) > _MAX_FIELD:
            raise _reject(400, "malformed_body", f"{name} is longer than {_MAX_FIELD} characters")
        return value

    return WebhookEvent(
        event_name=text("EventName") or "",
        resource_uri=text("ResourceUri") or "",
        resource_change_utc_date=text("ResourceChangeUtcDate") or "",
        audit_uri=text("AuditUri", required=False),
    )


def fraud_event_scope(resource_uri: str) -> tuple[str, str | None]:
    """(subscription id, event status) from an azure-fraud-event-detected ResourceUri.

    The documented form is ``{baseURL}/v1/fraudEvents?SubscriptionId={id}&EventStatus={status}``;
    query names are matched case-insensitively. A missing or non-GUID SubscriptionId is a 400.
    """
    try:
        query = parse_qsl(urlsplit(resource_uri).query, keep_blank_values=True)
    except ValueError:
        raise _reject(400, "invalid_resource_uri", "ResourceUri is not a URL") from None
    params: dict[str, str] = {}
    for name, value in query:
        params.setdefault(name.lower(), value)
    subscription_id = params.get("subscriptionid", "")
    if not is_guid(subscription_id):
        raise _reject(400, "invalid_resource_uri", "ResourceUri's SubscriptionId query parameter must be a GUID")
    status = params.get("eventstatus") or None
    if status is not None and not _EVENT_STATUS.fullmatch(status):
        raise _reject(400, "invalid_resource_uri", "ResourceUri's EventStatus must be a word such as Active")
    return subscription_id.lower(), status


def sync_job(*, subscription_id: str, event_status: str | None, delivery_id: str, now: datetime) -> SyncJob:
    """The alerts-sync job for one subscription (``shared.jobs.SyncJob``, the contract with the sync)."""
    return SyncJob(scope="subscription", subscription_id=subscription_id, source="partner_center",
                   event_status=event_status, trigger="webhook", delivery_id=delivery_id,
                   requested_at=now.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"))


def budget_sync_job(*, delivery_id: str, now: datetime) -> SyncJob:
    """The alerts-sync job of a ``usagerecords-thresholdExceeded`` event: the budget source, every customer."""
    return SyncJob(scope="all", source="budget", trigger="webhook", delivery_id=delivery_id,
                   requested_at=now.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"))


class WebhookReceiver:
    """Verifies Partner Center webhooks and turns fraud events (one subscription) and budget threshold
    events (the budget source, every customer) into alerts-sync jobs; other events are recorded only."""

    def __init__(
        self,
        *,
        certificates: SigningCertificateSource,
        deliveries: DeliveryLog,
        jobs: JobSender,
        max_body_bytes: int,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._certificates = certificates
        self._deliveries = deliveries
        self._jobs = jobs
        self._max_body_bytes = max_body_bytes
        self._clock = clock

    def check_size(self, headers: Mapping[str, str]) -> None:
        """413 from Content-Length alone, before the body is read (when the host lets us)."""
        declared = headers.get("content-length", "").strip()
        if declared.isdigit() and int(declared) > self._max_body_bytes:
            raise _reject(413, "payload_too_large", f"the body is larger than {self._max_body_bytes} bytes")

    def receive(self, *, headers: Mapping[str, str], body: bytes) -> WebhookAnswer:
        """Answer one webhook request. ``headers`` keys must be lower-case.

        Rejections are logged with their reason (never the signature or the body); storage
        failures propagate as StorageError for the caller to answer 503 (Partner Center retries).
        """
        try:
            return self._receive(headers, body)
        except WebhookRejected as rejected:
            logger.warning("webhook rejected (%s %s): %s", rejected.status, rejected.code, rejected.message)
            return WebhookAnswer(rejected.status, {"error": rejected.code, "message": rejected.message})

    def _receive(self, headers: Mapping[str, str], body: bytes) -> WebhookAnswer:
        self.check_size(headers)
        if len(body) > self._max_body_bytes:
            raise _reject(413, "payload_too_large", f"the body is larger than {self._max_body_bytes} bytes")
        content_type = headers.get("content-type", "")
        if not _is_json_content_type(content_type):
            raise _reject(415, "unsupported_media_type", "the body must be sent as Content-Type: application/json")
        signed = parse_signature_headers(headers)
        event = parse_event(body)
        if event.event_name.lower() == FRAUD_EVENT:
            scope: tuple[str, str | None] | None = fraud_event_scope(event.resource_uri)
        elif event.event_name.lower() == THRESHOLD_EVENT.lower():
            scope = ("", None)  # every customer's usage records: the event names none
        else:
            scope = None
        self._certificates.check_url(signed.certificate_url)
        leaf = self._certificates.verified_leaf(signed.certificate_url)
        verify_body_signature(leaf, body, signed.signature)
        return self._record(event, scope)

    def _record(self, event: WebhookEvent, scope: tuple[str, str | None] | None) -> WebhookAnswer:
        key = event.dedupe_key
        now = self._clock()
        fields: dict[str, Any] = {
            "EventName": event.event_name,
            "ResourceUri": event.resource_uri,
            "ResourceChangeUtcDate": event.resource_change_utc_date,
            "AuditUri": event.audit_uri or "",
            "State": STATE_RECEIVED if scope else STATE_RECORDED,
            "ReceivedAt": now.isoformat(timespec="seconds"),
        }
        if scope and scope[0]:
            fields["SubscriptionId"], fields["EventStatus"] = scope[0], scope[1] or ""
        inserted = self._deliveries.insert_once(key, fields)
        if scope is None:
            logger.info("webhook %s recorded (delivery %s%s); nothing to enqueue",
                        _safe(event.event_name), key[:16], "" if inserted else ", duplicate")
            return WebhookAnswer(200, {"status": "recorded", "delivery_id": key, "duplicate": not inserted})
        if not inserted:
            state, enqueued_at = self._deliveries.state(key) or (STATE_RECEIVED, None)
            stale = state == STATE_RECEIVED and (enqueued_at is None or now - enqueued_at > REENQUEUE_AFTER)
            if not stale:
                logger.info("webhook %s is a duplicate (delivery %s, %s)", _safe(event.event_name), key[:16], state)
                return WebhookAnswer(200, {"status": "duplicate", "delivery_id": key, "duplicate": True})
            logger.warning("webhook delivery %s was recorded %s ago and is still not synced: its sync job may "
                           "never have been enqueued; enqueuing again", key[:16], now - enqueued_at if enqueued_at
                           else "long")
        subscription_id, event_status = scope
        if subscription_id:
            add_context(subscription=subscription_id)
            job = sync_job(subscription_id=subscription_id, event_status=event_status, delivery_id=key, now=now)
        else:
            job = budget_sync_job(delivery_id=key, now=now)
        try:
            self._jobs.send_json(job.to_json())
        except Exception:
            if inserted:  # forget it, so Partner Center's retry (we answer 503) enqueues it again
                with contextlib.suppress(Exception):
                    self._deliveries.delete(key)
            raise  # a stale row is left untouched, so the retry finds it stale and enqueues again
        if not inserted:
            # Only after the send: touching first made a failed re-enqueue look done to the retry.
            try:
                self._deliveries.touch(key, now)
            except Exception as exc:  # the job is enqueued; a later redelivery may enqueue once more (harmless)
                logger.warning("webhook delivery %s re-enqueued but its time not updated: %s", key[:16],
                               type(exc).__name__)
        logger.info("webhook %s for %s: alerts-sync job enqueued (delivery %s)", _safe(event.event_name),
                    f"subscription {subscription_id}" if subscription_id else "every customer", key[:16])
        return WebhookAnswer(200, {"status": "enqueued", "delivery_id": key, "duplicate": not inserted})


def _safe(value: str) -> str:
    """An attacker-influenced value made safe for one log line (verified, but still bounded)."""
    return re.sub(r"[^A-Za-z0-9._-]", "?", value[:64])


# ---------------------------------------------------------------------------------------------
# Storage adapters (Table Storage and the alerts-sync queue) and wiring from settings.

DELIVERY_ROW = "delivery"
"""RowKey of a delivery row; its PartitionKey is the dedupe key (spreads writes over partitions)."""


class TableDeliveryLog:
    """DeliveryLog on the ``deliveries`` table (shared.names.DELIVERIES_TABLE)."""

    def __init__(self, store: TableStore) -> None:
        self._store = store

    def insert_once(self, key: str, fields: Mapping[str, Any]) -> bool:
        return self._store.insert_once(DELIVERIES_TABLE, {"PartitionKey": key, "RowKey": DELIVERY_ROW, **fields})

    def state(self, key: str) -> tuple[str, datetime | None] | None:
        row = self._store.get(DELIVERIES_TABLE, key, DELIVERY_ROW, select=["State", "ReceivedAt"])
        if row is None:
            return None
        try:
            received = datetime.fromisoformat(str(row.get("ReceivedAt", "")))
        except ValueError:
            received = None
        return str(row.get("State", "")), received

    def touch(self, key: str, when: datetime) -> None:
        self._store.upsert(DELIVERIES_TABLE, {"PartitionKey": key, "RowKey": DELIVERY_ROW,
                                              "ReceivedAt": when.isoformat(timespec="seconds")})

    def delete(self, key: str) -> None:
        self._store.delete(DELIVERIES_TABLE, key, DELIVERY_ROW)


def mark_synced(store: TableStore, delivery_id: str) -> None:
    """Called by the sync job when it has run: later redeliveries of this event are duplicates."""
    store.upsert(DELIVERIES_TABLE, {"PartitionKey": delivery_id, "RowKey": DELIVERY_ROW, "State": STATE_SYNCED,
                                    "SyncedAt": datetime.now(UTC).isoformat(timespec="seconds")})


class QueueJobSender:
    """JobSender on the alerts-sync queue (shared.names.SYNC_QUEUE)."""

    def __init__(self, sender: QueueSender, queue: str = SYNC_QUEUE) -> None:
        self._sender = sender
        self._queue = queue

    def send_json(self, document: Mapping[str, Any]) -> None:
        self._sender.send_json(self._queue, dict(document))


def build_receiver(settings: Settings) -> WebhookReceiver:
    """A receiver wired to real storage and the certificate rules in ``settings``."""
    from shared import factory
    from shared.intake.certificates import CertificateFetcher, SigningCertificates
    from shared.intake.signature import TrustAnchors

    fetcher = CertificateFetcher(
        allowed_hosts=settings.webhook_cert_hosts,
        private_hosts=settings.webhook_allow_private_cert_hosts,
        tls_verify=settings.tls_verify(),
    )
    certificates = SigningCertificates(fetcher=fetcher, anchors=TrustAnchors.from_file(settings.webhook_trusted_roots))
    return WebhookReceiver(
        certificates=certificates,
        deliveries=TableDeliveryLog(factory.table_store(settings)),
        jobs=QueueJobSender(factory.queue_sender(settings)),
        max_body_bytes=settings.webhook_max_body_bytes,
    )


@functools.lru_cache(maxsize=4)
def receiver_for(settings: Settings) -> WebhookReceiver:
    """One receiver per settings (keeps the certificate cache and storage clients warm)."""
    return build_receiver(settings)


@contextual(job="webhook")
def handle_request(headers: Mapping[str, str], body: Callable[[], bytes], *,
                   settings: Settings | None = None) -> WebhookAnswer:
    """The HTTP entry point: 503 when storage fails (Partner Center retries), 500 when misconfigured.

    ``body`` is called only after the Content-Length check, so an oversized request is refused
    before its body is touched where the host allows it.
    """
    from azure.core.exceptions import AzureError

    from shared.settings import get_settings
    from shared.storage.errors import StorageError

    lowered = {str(k).lower(): str(v) for k, v in headers.items()}
    try:
        receiver = receiver_for(settings or get_settings())
    except ValueError as exc:
        logger.error("webhook receiver is misconfigured: %s", exc)
        return WebhookAnswer(500, {"error": "misconfigured", "message": "the webhook receiver is misconfigured; "
                                   "see the function app's log"})
    try:
        receiver.check_size(lowered)
    except WebhookRejected as rejected:
        logger.warning("webhook rejected (%s %s): %s", rejected.status, rejected.code, rejected.message)
        return WebhookAnswer(rejected.status, {"error": rejected.code, "message": rejected.message})
    try:
        return receiver.receive(headers=lowered, body=body())
    except (StorageError, AzureError) as exc:
        # AzureError: storage answers the store does not translate (e.g. 403, 500); never logged whole.
        status = getattr(exc, "status_code", "")
        reason = str(exc) if isinstance(exc, StorageError) else f"{type(exc).__name__} {status}"
        logger.error("webhook verified but not stored, Partner Center will retry: %s", reason)
        return WebhookAnswer(503, {"error": "storage_unavailable",
                                   "message": "the event could not be stored; retry later"})
