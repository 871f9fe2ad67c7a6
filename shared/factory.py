"""The one place that builds stores, token providers and Microsoft clients from ``Settings``.

Everything that needs a client or a store asks here: the intake runtime (sync), the admin API's
services, the actions' ``Clients`` cache, the CLI and the webhook receiver. So which token a client
uses (the Secure Application Model refresh token for Partner Center and customer tenants, the app-only
token for sendMail and partner security alerts), how TLS is verified and which endpoint is called are
decided once.

Callers keep their own caches (one per process and settings, or one per job); these functions only
build. Every import is inside its function: the Azure SDK, MSAL and httpx stay out of cold start.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shared.auth.app_tokens import GraphAppTokenProvider
    from shared.auth.partner_tokens import PartnerTokenProvider
    from shared.auth.secrets import SecretStore
    from shared.clients.arm import ArmClient
    from shared.clients.graph import GraphClient
    from shared.clients.partner_center import PartnerCenterClient
    from shared.intake.webhook import WebhookReceiver
    from shared.response.engine import Responder
    from shared.settings import Settings
    from shared.storage.queues import QueueSender
    from shared.storage.tables import TableStore


# --- storage ---------------------------------------------------------------------------------------


def table_store(settings: Settings) -> TableStore:
    """Table Storage (alerts, ledger, checkpoints, contacts) for ``settings``' account."""
    from shared.storage.tables import TableStore

    return TableStore(settings)


def queue_sender(settings: Settings) -> QueueSender:
    """The sender of sync and respond jobs (and poison replays)."""
    from shared.storage.queues import QueueSender

    return QueueSender(settings)


def responder(settings: Settings, store: TableStore | None = None, *,
              lease_seconds: float | None = None) -> Responder:
    """The responder (policy, ledger, actions) over ``store`` (a new one when None)."""
    from shared.response.engine import DEFAULT_LEASE_SECONDS, Responder

    return Responder(settings, store or table_store(settings),
                     lease_seconds=DEFAULT_LEASE_SECONDS if lease_seconds is None else lease_seconds)


# --- tokens ----------------------------------------------------------------------------------------


def partner_tokens(settings: Settings) -> PartnerTokenProvider:
    """Tokens from the Secure Application Model refresh token (Partner Center, GDAP into customers)."""
    from shared.auth.partner_tokens import PartnerTokenProvider

    return PartnerTokenProvider(settings)


def app_tokens(settings: Settings) -> GraphAppTokenProvider:
    """App-only Graph tokens in the partner tenant (sendMail, partner security alerts)."""
    from shared.auth.app_tokens import GraphAppTokenProvider

    return GraphAppTokenProvider(settings)


def secret_store(settings: Settings) -> SecretStore:
    """Key Vault (the refresh token, rotated credentials)."""
    from shared.auth.secrets import SecretStore

    return SecretStore(settings)


# --- Microsoft clients -----------------------------------------------------------------------------


def partner_center(settings: Settings, tokens: PartnerTokenProvider) -> PartnerCenterClient:
    """Partner Center with the SAM token."""
    from shared.auth import PARTNER_CENTER_RESOURCE
    from shared.clients.partner_center import PartnerCenterClient

    return PartnerCenterClient.from_settings(settings, token=lambda: tokens.token(PARTNER_CENTER_RESOURCE))


def graph_app(settings: Settings, tokens: GraphAppTokenProvider) -> GraphClient:
    """Graph with the app-only token in the partner tenant."""
    from shared.auth import GRAPH_RESOURCE
    from shared.clients.graph import GraphClient

    return GraphClient.from_settings(settings, token=lambda: tokens.token(GRAPH_RESOURCE))


def graph_delegated(settings: Settings, tokens: PartnerTokenProvider, tenant: str | None = None) -> GraphClient:
    """Graph with the SAM (GDAP) token: in a customer ``tenant``, or the partner's own when None."""
    from shared.auth import GRAPH_RESOURCE
    from shared.clients.graph import GraphClient

    return GraphClient.from_settings(settings, token=lambda: tokens.token(GRAPH_RESOURCE, tenant))


def arm(settings: Settings, tokens: PartnerTokenProvider, tenant: str) -> ArmClient:
    """Azure Resource Manager in a customer ``tenant`` with the SAM (GDAP) token."""
    from shared.auth import ARM_RESOURCE
    from shared.clients.arm import ArmClient

    return ArmClient.from_settings(settings, token=lambda: tokens.token(ARM_RESOURCE, tenant))


# --- intake ----------------------------------------------------------------------------------------


def webhook_receiver(settings: Settings) -> WebhookReceiver:
    """A webhook receiver wired to real storage and the certificate rules in ``settings``."""
    from shared.intake.certificates import CertificateFetcher, SigningCertificates
    from shared.intake.signature import TrustAnchors
    from shared.intake.webhook import QueueJobSender, TableDeliveryLog, WebhookReceiver

    fetcher = CertificateFetcher(
        allowed_hosts=settings.webhook_cert_hosts,
        private_hosts=settings.webhook_allow_private_cert_hosts,
        tls_verify=settings.tls_verify(),
    )
    certificates = SigningCertificates(fetcher=fetcher, anchors=TrustAnchors.from_file(settings.webhook_trusted_roots))
    return WebhookReceiver(
        certificates=certificates,
        deliveries=TableDeliveryLog(table_store(settings)),
        jobs=QueueJobSender(queue_sender(settings)),
        max_body_bytes=settings.webhook_max_body_bytes,
    )
