"""The one place that builds stores, token providers and Microsoft clients from ``Settings``.

Everything that needs a client or a store asks here: the intake runtime (sync), the admin API's
services, the actions' ``Clients`` cache, the responder's job runner, the CLI and the webhook
receiver. So which token a client uses (the Secure Application Model refresh token for Partner
Center and customer tenants, the app-only token for sendMail and partner security alerts) is
decided once.

Callers keep their own caches (one per process and settings, or one per job); these functions only
build. Only stores, tokens and clients live here, never what uses them (the responder, the webhook
receiver): those import this module, so it must not import them (tests/test_import_cycles.py).
Every import is inside its function: the Azure SDK, MSAL and httpx stay out of cold start.
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
    from shared.detection.reader import ClientReader
    from shared.settings import Settings
    from shared.spend.export import BillingExportClient
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


def billing_export(settings: Settings, tokens: GraphAppTokenProvider) -> BillingExportClient:
    """Graph's partner billing export (app-only, partner tenant); blobs read with their SAS token."""
    from shared.http import verify_from_settings
    from shared.spend.export import BillingExportClient

    return BillingExportClient(graph_app(settings, tokens).http, verify=verify_from_settings(settings))
# --- detection ---------------------------------------------------------------------------------------


MAX_ARM_CLIENTS = 64
"""ARM clients (one per customer tenant, each with its connection) a detection reader keeps at once."""


def detection_reader(settings: Settings, tokens: PartnerTokenProvider | None = None) -> ClientReader:
    """What the detectors read (Partner Center customers and audit records, each customer's ARM activity log
    and compute usages) with the SAM token; one ARM client per customer tenant, made on first use and
    closed with the reader (``with detection_reader(settings) as reader: ...``)."""
    import threading
    from collections import OrderedDict

    from shared.detection.reader import ClientReader

    provider = tokens or partner_tokens(settings)
    pc = partner_center(settings, provider)
    clients: OrderedDict[str, ArmClient] = OrderedDict()
    lock = threading.Lock()  # the runner may read several subscriptions at once

    def arm_for(tenant: str) -> ArmClient:
        with lock:
            client = clients.get(tenant)
            if client is None:
                client = clients[tenant] = arm(settings, provider, tenant)
                while len(clients) > MAX_ARM_CLIENTS:
                    # the least recently used tenant's client is dropped, not closed: a reader may still be
                    # paging with it; its pooled connection closes when the last reference goes. Memory
                    # stays flat however many customers are watched.
                    clients.popitem(last=False)
            else:
                clients.move_to_end(tenant)
            return client

    def close() -> None:
        with lock:
            for client in clients.values():
                client.close()
            clients.clear()
        pc.close()

    return ClientReader(arm=arm_for, partner_center=pc, on_close=close)
