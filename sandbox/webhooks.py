"""Partner Center webhooks: registration, validation events and signed delivery, plus the cert host.

Signing follows the documented receiver steps: the body is signed with RSA-SHA256 (PKCS#1 v1.5)
by a certificate whose subject and issuer carry ``O=Microsoft Corporation`` and which chains to a
generated root ("Sandbox Microsoft Root"). Headers: ``Authorization: Signature <base64>``,
``X-MS-Certificate-Url`` (the DER certificate on the ``cert_host`` stand-in, same path shape as
Microsoft's blob URL) and ``X-MS-Signature-Algorithm: rsa-sha256``; with
``SignatureTokenToMsSignatureHeader`` in the registration the signature moves to ``x-ms-signature``.

Deliveries run on background threads: up to ``max_attempts`` (10, as documented) with a short
backoff; every attempt is recorded and reported by GET .../validationEvents/{correlationId}.

Scenario section ``webhooks``::

    {
      "registration": {"WebhookUrl": "...", "WebhookEvents": [...]},   # optional initial registration
      "delivery": {"max_attempts": 10, "backoff_seconds": 0.5, "backoff_max_seconds": 5, "timeout_seconds": 10},
      "validation_events_per_minute": 2
    }
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import http.client
import ipaddress
import json
import logging
import ssl
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from sandbox.core import HttpError, Request, Response, Service, json_response, route

if TYPE_CHECKING:
    from sandbox.core import Sandbox

log = logging.getLogger("sandbox.webhooks")

FRAUD_EVENT = "azure-fraud-event-detected"
TEST_EVENT = "test-created"
THRESHOLD_EVENT = "usagerecords-thresholdExceeded"
# The documented event names (GET /webhooks/v1/registration/events).
EVENT_NAMES: tuple[str, ...] = (
    "test-created",
    "subscription-updated",
    "usagerecords-thresholdExceeded",
    "referral-created",
    "referral-updated",
    "related-referral-created",
    "related-referral-updated",
    "granular-admin-relationship-approved",
    "granular-admin-relationship-activated",
    "granular-admin-relationship-terminated",
    "granular-admin-relationship-expired",
    "granular-admin-access-assignment-created",
    "granular-admin-access-assignment-activated",
    "granular-admin-access-assignment-updated",
    "granular-admin-access-assignment-deleted",
    "reseller-relationship-accepted-by-customer",
    "indirect-reseller-relationship-accepted-by-customer",
    "dap-admin-relationship-approved",
    "dap-admin-relationship-terminated",
    "dap-admin-relationship-terminated-by-microsoft",
    FRAUD_EVENT,
    "invoice-ready",
)
CERT_FILE_NAME = "pcnotifications-dispatch.microsoft.com.cer"
ROOT_NAME = "Sandbox Microsoft Root"
SIGNER_NAME = "pcnotifications-dispatch.microsoft.com"
SIGNER_KEY = "webhook_signer"
ROOT_PEM_FILE = "webhook-root.pem"


# ---------------------------------------------------------------------------------------------
# Signing chain


def _name(common_name: str) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Microsoft Corporation"),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ])


@functools.cache
def _keys() -> tuple[rsa.RSAPrivateKey, rsa.RSAPrivateKey]:
    """RSA keys for the root and the signer, made once per process (key generation is the slow part)."""
    return (rsa.generate_private_key(public_exponent=65537, key_size=2048),
            rsa.generate_private_key(public_exponent=65537, key_size=2048))


class WebhookSigner:
    """The webhook signing chain: a root CA and the signing certificate it issued."""

    def __init__(self, directory: Path) -> None:
        root_key, signer_key = _keys()
        now = dt.datetime.now(dt.UTC)
        self.root = (
            x509.CertificateBuilder()
            .subject_name(_name(ROOT_NAME)).issuer_name(_name(ROOT_NAME))
            .public_key(root_key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), critical=False)
            .sign(root_key, hashes.SHA256())
        )
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(_name(SIGNER_NAME)).issuer_name(self.root.subject)
            .public_key(signer_key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=90))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), critical=False)
            .sign(root_key, hashes.SHA256())
        )
        self._key = signer_key
        directory.mkdir(parents=True, exist_ok=True)
        self.root_pem_path = directory / ROOT_PEM_FILE
        self.root_pem_path.write_bytes(self.root.public_bytes(serialization.Encoding.PEM))

    @property
    def certificate_der(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.DER)

    def sign(self, body: bytes) -> str:
        """Base64 RSA-SHA256 (PKCS#1 v1.5) signature of the exact body bytes."""
        return base64.b64encode(self._key.sign(body, padding.PKCS1v15(), hashes.SHA256())).decode("ascii")


def webhook_signer(sandbox: Sandbox) -> WebhookSigner:
    """The sandbox's one signer (created by whichever service asks first)."""
    with _SIGNER_LOCK:
        signer = sandbox.shared.get(SIGNER_KEY)
        if not isinstance(signer, WebhookSigner):
            signer = WebhookSigner(sandbox.state_dir)
            sandbox.shared[SIGNER_KEY] = signer
        return signer


_SIGNER_LOCK = threading.Lock()


# ---------------------------------------------------------------------------------------------
# Delivery


def _pc_utc(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond:06d}0"


@dataclass
class Attempt:
    """One delivery attempt as GET .../validationEvents/{correlationId} reports it."""

    response_code: str
    response_message: str
    system_error: str
    date_time_utc: str
    status: int

    def to_dict(self) -> dict[str, Any]:
        return {"responseCode": self.response_code, "responseMessage": self.response_message,
                "systemError": self.system_error, "dateTimeUtc": self.date_time_utc}


@dataclass
class Delivery:
    """One event posted to the registered URL, with every attempt."""

    id: str
    event_name: str
    url: str
    body: bytes
    headers: dict[str, str]
    attempts: list[Attempt] = field(default_factory=list)
    state: str = "pending"  # pending | completed | failed
    done: threading.Event = field(default_factory=threading.Event)

    def wait(self, timeout: float = 30.0) -> bool:
        return self.done.wait(timeout)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "eventName": self.event_name, "url": self.url, "state": self.state,
                "body": self.body.decode("utf-8"), "headers": self.headers,
                "attempts": [a.to_dict() for a in self.attempts]}


def _reason_code(status: int) -> str:
    """.NET HttpStatusCode names, as Partner Center reports them ("OK", "InternalServerError")."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        return str(status)
    return "OK" if status == 200 else "".join(part[:1].upper() + part[1:] for part in phrase.replace("-", " ").split())


def _is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class DeliveryConfig:
    max_attempts: int = 10
    backoff_seconds: float = 0.5
    backoff_max_seconds: float = 5.0
    timeout_seconds: float = 10.0

    @classmethod
    def from_section(cls, section: dict[str, Any]) -> DeliveryConfig:
        raw = section.get("delivery") or {}
        return cls(**{k: type(getattr(cls, k))(v) for k, v in raw.items() if k in cls.__dataclass_fields__})


class Dispatcher:
    """Posts signed events on background threads, retrying, and records every attempt."""

    def __init__(self, sandbox: Sandbox, config: DeliveryConfig) -> None:
        self.sandbox = sandbox
        self.config = config
        self.deliveries: dict[str, Delivery] = {}
        self.lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def deliver(self, event: dict[str, Any], url: str, *, ms_signature_header: bool,
                delivery_id: str | None = None) -> Delivery:
        signer = webhook_signer(self.sandbox)
        body = json.dumps(event).encode("utf-8")
        signature = signer.sign(body)
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "X-MS-Certificate-Url": f"{self.sandbox.url('cert_host')}/cert/{CERT_FILE_NAME}",
            "X-MS-Signature-Algorithm": "rsa-sha256",
        }
        if ms_signature_header:
            headers["x-ms-signature"] = f"Signature {signature}"
        else:
            headers["Authorization"] = f"Signature {signature}"
        delivery = Delivery(delivery_id or str(uuid.uuid4()), str(event.get("EventName", "")), url, body, headers)
        with self.lock:
            self.deliveries[delivery.id] = delivery
            self._threads = [t for t in self._threads if t.is_alive()]
            thread = threading.Thread(target=self._run, args=(delivery,), name=f"webhook-{delivery.id[:8]}",
                                      daemon=True)
            self._threads.append(thread)
        thread.start()
        return delivery

    def _run(self, delivery: Delivery) -> None:
        config = self.config
        stopping: Callable[[], bool] = getattr(self.sandbox, "is_stopping", None) or (
            lambda: bool(getattr(self.sandbox, "_stopping", threading.Event()).is_set()))
        try:
            for attempt in range(1, config.max_attempts + 1):
                if stopping():
                    break
                result = self._attempt(delivery)
                delivery.attempts.append(result)
                if 200 <= result.status < 300:
                    delivery.state = "completed"
                    return
                if attempt < config.max_attempts:
                    self.sandbox.sleep(min(config.backoff_max_seconds, config.backoff_seconds * 2 ** (attempt - 1)))
            delivery.state = "failed"
        finally:
            delivery.done.set()

    def _attempt(self, delivery: Delivery) -> Attempt:
        when = _pc_utc(dt.datetime.now(dt.UTC))
        target = urlsplit(delivery.url)
        try:
            if target.scheme == "https":
                context = ssl.create_default_context()
                context.load_verify_locations(cafile=str(self.sandbox.ca_cert_path))
                conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                    target.hostname or "", target.port, timeout=self.config.timeout_seconds, context=context)
            else:
                conn = http.client.HTTPConnection(target.hostname or "", target.port,
                                                  timeout=self.config.timeout_seconds)
            try:
                path = (target.path or "/") + (f"?{target.query}" if target.query else "")
                conn.request("POST", path, body=delivery.body, headers=delivery.headers)
                response = conn.getresponse()
                text = response.read(4096).decode("utf-8", "replace")
                return Attempt(_reason_code(response.status), text[:512], "", when, response.status)
            finally:
                conn.close()
        except (OSError, http.client.HTTPException) as exc:
            return Attempt("", "", f"{type(exc).__name__}: {exc}", when, 0)

    def join(self, timeout: float = 5.0) -> None:
        """Wait for running deliveries (the sandbox's stop wakes their backoff sleeps)."""
        with self.lock:
            threads = list(self._threads)
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))


# ---------------------------------------------------------------------------------------------
# Routes on the Partner Center port (mixed into PartnerCenterService)


@dataclass
class Registration:
    webhook_url: str
    webhook_events: list[str]
    ms_signature_header: bool = False

    def to_dict(self, subscriber_id: str) -> dict[str, Any]:
        body: dict[str, Any] = {"SubscriberId": subscriber_id, "WebhookUrl": self.webhook_url,
                                "WebhookEvents": list(self.webhook_events)}
        if self.ms_signature_header:
            body["SignatureTokenToMsSignatureHeader"] = True
        return body


def _field(body: dict[str, Any], name: str) -> Any:
    for key, value in body.items():
        if key.lower() == name.lower():
            return value
    return None


class WebhookRoutes:
    """The webhook management API and the raise control endpoint (needs Service attributes)."""

    sandbox: Sandbox
    section: dict[str, Any]
    base_url: str
    lock: threading.RLock
    partner_tenant_id: str

    def reset_webhooks(self) -> None:
        section = self.sandbox.scenario.get("webhooks") or {}
        old = getattr(self, "dispatcher", None)
        if isinstance(old, Dispatcher):
            old.join(timeout=0)
        self.dispatcher = Dispatcher(self.sandbox, DeliveryConfig.from_section(section))
        self.validation_limit = int(section.get("validation_events_per_minute", 2))
        self._validation_times: list[float] = []
        initial = section.get("registration")
        self.registration: Registration | None = self._parse_registration(initial) if initial else None

    # -- Python API ----------------------------------------------------------------------------

    def raise_fraud_event(self, subscription_id: str, event_status: str = "Active") -> Delivery:
        """Deliver ``azure-fraud-event-detected`` for a subscription to the registered URL."""
        with self.lock:
            registration = self.registration
        if registration is None or FRAUD_EVENT not in registration.webhook_events:
            raise HttpError(409, "409", f"No webhook registration includes {FRAUD_EVENT}; register one first "
                            "(POST /webhooks/v1/registration).")
        event = {
            "EventName": FRAUD_EVENT,
            "ResourceUri": (f"{self.base_url}/v1/fraudEvents"
                            f"?SubscriptionId={subscription_id}&EventStatus={event_status}"),
            "AuditUri": None,
            "ResourceChangeUtcDate": _pc_utc(dt.datetime.now(dt.UTC)) + "+00:00",
        }
        return self.dispatcher.deliver(event, registration.webhook_url,
                                       ms_signature_header=registration.ms_signature_header)

    def raise_threshold_event(self) -> Delivery:
        """Deliver ``usagerecords-thresholdExceeded`` (a customer passed its budget) to the registered URL."""
        with self.lock:
            registration = self.registration
        if registration is None or THRESHOLD_EVENT not in registration.webhook_events:
            raise HttpError(409, "409", f"No webhook registration includes {THRESHOLD_EVENT}; register one first "
                            "(POST /webhooks/v1/registration).")
        event = {"EventName": THRESHOLD_EVENT, "ResourceUri": f"{self.base_url}/v1/customers/usagerecords",
                 "ResourceName": "usagerecords", "AuditUri": None,
                 "ResourceChangeUtcDate": _pc_utc(dt.datetime.now(dt.UTC)) + "+00:00"}
        return self.dispatcher.deliver(event, registration.webhook_url,
                                       ms_signature_header=registration.ms_signature_header)

    # -- helpers -------------------------------------------------------------------------------

    @staticmethod
    def _parse_registration(body: Any) -> Registration:
        if not isinstance(body, dict):
            raise HttpError(400, "400", "The body must be {\"WebhookUrl\": ..., \"WebhookEvents\": [...]}.")
        url, events = _field(body, "WebhookUrl"), _field(body, "WebhookEvents")
        if not isinstance(url, str) or not url:
            raise HttpError(400, "400", "WebhookUrl is required.")
        target = urlsplit(url)
        if target.scheme not in ("https", "http") or not target.hostname:
            raise HttpError(400, "400", f"WebhookUrl {url!r} is not an absolute URL.")
        if not _is_loopback_host(target.hostname):
            raise HttpError(400, "400", "The sandbox delivers to loopback receivers only (127.0.0.1 or localhost).")
        if not isinstance(events, list) or not events or not all(isinstance(e, str) for e in events):
            raise HttpError(400, "400", "WebhookEvents must be a non-empty array of event names.")
        unknown = [e for e in events if e not in EVENT_NAMES]
        if unknown:
            raise HttpError(400, "400", f"Unknown webhook event {unknown[0]!r}; GET /webhooks/v1/registration/events "
                            "lists the valid names.")
        flag = _field(body, "SignatureTokenToMsSignatureHeader")
        return Registration(url, list(events), flag is True or str(flag).lower() == "true")

    # -- routes --------------------------------------------------------------------------------

    @route("GET", r"/webhooks/v1/registration/events")
    def webhook_event_names(self, request: Request) -> Response:
        return json_response(200, list(EVENT_NAMES))

    @route("GET", r"/webhooks/v1/registration")
    def get_registration(self, request: Request) -> Response:
        with self.lock:
            if self.registration is None:
                raise HttpError(404, "404", "No webhook registration exists for this partner.")
            return json_response(200, self.registration.to_dict(self.partner_tenant_id))

    @route("POST", r"/webhooks/v1/registration")
    def create_registration(self, request: Request) -> Response:
        registration = self._parse_registration(request.json())
        with self.lock:
            self.registration = registration
            return json_response(200, registration.to_dict(self.partner_tenant_id))

    @route("PUT", r"/webhooks/v1/registration")
    def update_registration(self, request: Request) -> Response:
        registration = self._parse_registration(request.json())
        with self.lock:
            if self.registration is None:
                raise HttpError(404, "404", "No webhook registration exists; create it with POST first.")
            self.registration = registration
            return json_response(200, registration.to_dict(self.partner_tenant_id))

    @route("POST", r"/webhooks/v1/registration/validationEvents")
    def create_validation_event(self, request: Request) -> Response:
        with self.lock:
            registration = self.registration
            if registration is None or TEST_EVENT not in registration.webhook_events:
                raise HttpError(400, "400", f"Register for {TEST_EVENT} before posting validation events.")
            now = time.monotonic()
            self._validation_times = [t for t in self._validation_times if now - t < 60]
            if self.validation_limit > 0 and len(self._validation_times) >= self.validation_limit:
                wait = int(60 - (now - self._validation_times[0])) + 1
                raise HttpError(429, "429", f"Rate limit is exceeded. Try again in {wait} seconds.",
                                {"Retry-After": str(wait)})
            self._validation_times.append(now)
        correlation_id = str(uuid.uuid4())
        event = {
            "EventName": TEST_EVENT,
            "ResourceUri": f"{self.base_url}/webhooks/v1/registration/validationEvents/{correlation_id}",
            "ResourceName": "test",
            "AuditUri": None,
            "ResourceChangeUtcDate": _pc_utc(dt.datetime.now(dt.UTC)) + "+00:00",
        }
        self.dispatcher.deliver(event, registration.webhook_url, ms_signature_header=registration.ms_signature_header,
                                delivery_id=correlation_id)
        return json_response(200, {"correlationId": correlation_id})

    @route("GET", r"/webhooks/v1/registration/validationEvents/(?P<correlation>[^/]+)")
    def get_validation_event(self, request: Request) -> Response:
        delivery = self.dispatcher.deliveries.get(request.params["correlation"].lower())
        if delivery is None or delivery.event_name != TEST_EVENT:
            raise HttpError(404, "404", f"No validation event {request.params['correlation']}.")
        return json_response(200, {
            "correlationId": delivery.id, "partnerId": self.partner_tenant_id, "status": delivery.state,
            "callbackUrl": delivery.url, "results": [a.to_dict() for a in list(delivery.attempts)],
        })

    @route("POST", r"/_sandbox/webhooks/raise", auth=False)
    def control_raise(self, request: Request) -> Response:
        body = request.json()
        if isinstance(body, dict) and _field(body, "eventName") == THRESHOLD_EVENT:
            return json_response(202, self.raise_threshold_event().to_dict())
        subscription = _field(body, "subscriptionId") if isinstance(body, dict) else None
        if not isinstance(subscription, str) or not subscription:
            raise HttpError(400, "400", "Send {\"subscriptionId\": \"...\", \"eventStatus\": \"Active\"}.")
        status = _field(body, "eventStatus") or "Active"
        delivery = self.raise_fraud_event(subscription, str(status))
        return json_response(202, delivery.to_dict())

    @route("GET", r"/_sandbox/webhooks/deliveries", auth=False)
    def control_deliveries(self, request: Request) -> Response:
        return json_response(200, {"value": [d.to_dict() for d in list(self.dispatcher.deliveries.values())]})


# ---------------------------------------------------------------------------------------------
# The certificate host


class CertHostService(Service):
    """Serves the webhook signing certificate (DER) as Microsoft's blob storage does."""

    name = "cert_host"
    audiences = ()
    section_name = "webhooks"

    def reset(self) -> None:
        self.signer = webhook_signer(self.sandbox)

    def app_settings(self) -> dict[str, str]:
        """WEBHOOK_TRUSTED_ROOTS: the generated root the signing certificate chains to."""
        return {"WEBHOOK_TRUSTED_ROOTS": str(self.signer.root_pem_path)}

    @route("GET", r"/cert/(?P<name>[^/]+\.cer)", auth=False)
    def certificate(self, request: Request) -> Response:
        if request.params["name"].lower() != CERT_FILE_NAME.lower():
            return Response(404, b"BlobNotFound", {"Content-Type": "text/plain"})
        return Response(200, self.signer.certificate_der, {"Content-Type": "application/pkix-cert"})


# ---------------------------------------------------------------------------------------------
# Command line: python -m sandbox raise-webhook --subscription ID --control URL


def raise_webhook_command(*, control: str, subscription: str, event_status: str, ca_file: Path) -> int:
    """POST /_sandbox/webhooks/raise on a running sandbox; prints the delivery, returns an exit code."""
    target = urlsplit(control)
    if target.scheme != "https" or not _is_loopback_host(target.hostname or ""):
        print(f"--control must be the sandbox's https loopback Partner Center URL, not {control!r}")
        return 2
    if not ca_file.is_file():
        print(f"the sandbox CA file {ca_file} does not exist; pass --ca (python -m sandbox serve prints it)")
        return 2
    body = json.dumps({"subscriptionId": subscription, "eventStatus": event_status}).encode()
    context = ssl.create_default_context(cafile=str(ca_file))
    conn = http.client.HTTPSConnection(target.hostname or "", target.port, timeout=10, context=context)
    try:
        conn.request("POST", target.path.rstrip("/") + "/_sandbox/webhooks/raise", body=body,
                     headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        text = response.read().decode("utf-8", "replace")
    except OSError as exc:
        print(f"cannot reach the sandbox at {control}: {exc}; is `python -m sandbox serve` running?")
        return 1
    finally:
        conn.close()
    if response.status != 202:
        print(f"the sandbox refused (HTTP {response.status}): {text}")
        return 1
    print(text)
    return 0
