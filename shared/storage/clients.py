"""Service clients built from the storage connection settings.

Imported lazily by handlers: azure.data.tables and azure.storage.queue stay out of cold start.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from shared.settings import StorageConnection

if TYPE_CHECKING:
    from azure.data.tables import TableServiceClient
    from azure.storage.queue import QueueClient, QueueServiceClient

# Short timeouts: a hung storage call should fail a health check or a handler quickly and be
# retried by the queue, not hold a worker.
_TIMEOUTS: dict[str, Any] = {"connection_timeout": 5, "read_timeout": 20}
_RETRIES: dict[str, Any] = {"retry_total": 3}
POOL_SIZE = 128
"""Connections kept per storage endpoint (requests keeps 10): more than the storage calls a host makes at
once, 12 queue invocations each answering up to RESPOND_CONCURRENCY (8) alerts, each with the investigation
beside its containment. At 32, a 10,000-alert backlog discarded connections ("Connection pool is full")
and reconnected under load until one call could not connect to Table Storage at all."""


def _transport(endpoint: str) -> Any:
    """A requests transport that reads the proxy and CA-bundle environment once, for ``endpoint``.

    By default requests reads them again on every request (a walk over the whole environment and the
    NO_PROXY rules), a third of a storage call's CPU in a host with a hundred app settings
    (``make bench`` containment). The values are the same for the life of the process.
    """
    import requests
    from azure.core.pipeline.transport import RequestsTransport
    from requests.adapters import HTTPAdapter
    from urllib3.util.retry import Retry

    # requests' own reading of the environment (proxies with NO_PROXY, REQUESTS_CA_BUNDLE), done once.
    environment = requests.Session().merge_environment_settings(endpoint, {}, None, True, None)
    session = requests.Session()
    session.trust_env = False
    session.proxies = dict(environment["proxies"])
    adapter = HTTPAdapter(max_retries=Retry(total=False, redirect=False, raise_on_status=False),
                          pool_connections=POOL_SIZE, pool_maxsize=POOL_SIZE)  # the SDK retries, not urllib3
    for scheme in ("http://", "https://"):
        session.mount(scheme, adapter)
    return RequestsTransport(session=session, session_owner=True, use_env_settings=False,
                             connection_verify=environment["verify"], **_TIMEOUTS)


def _client_kwargs(endpoint: str) -> dict[str, Any]:
    return {"transport": _transport(endpoint), **_TIMEOUTS, **_RETRIES}


def _credential(conn: StorageConnection) -> Any:
    from azure.identity import DefaultAzureCredential

    if conn.client_id:
        return DefaultAzureCredential(managed_identity_client_id=conn.client_id)
    return DefaultAzureCredential()


def table_service(conn: StorageConnection) -> TableServiceClient:
    from azure.data.tables import TableServiceClient

    if conn.connection_string:
        endpoint = TableServiceClient.from_connection_string(conn.connection_string).url
        return TableServiceClient.from_connection_string(conn.connection_string, **_client_kwargs(endpoint))
    return TableServiceClient(endpoint=conn.table_service_uri, credential=_credential(conn),
                              **_client_kwargs(conn.table_service_uri))


def queue_service(conn: StorageConnection) -> QueueServiceClient:
    """Queue service whose queue clients send and read base64, as the Functions trigger expects.

    The SDK does not pass encode/decode policies given to a QueueServiceClient on to the clients
    ``get_queue_client`` returns (they would send plain text, which the Functions host moves to
    the poison queue), so the returned client adds them there.
    """
    cls = _base64_queue_service_class()
    if conn.connection_string:
        endpoint = cls.from_connection_string(conn.connection_string).url
        return cls.from_connection_string(conn.connection_string, **_client_kwargs(endpoint))  # type: ignore[no-any-return]
    return cls(account_url=conn.queue_service_uri, credential=_credential(conn),  # type: ignore[no-any-return]
               **_client_kwargs(conn.queue_service_uri))


def queue_client(conn: StorageConnection, queue: str) -> QueueClient:
    """A client for one queue, bytes in and out, base64 on the wire."""
    return queue_service(conn).get_queue_client(queue)


@functools.cache
def _base64_queue_service_class() -> Any:
    from azure.storage.queue import BinaryBase64DecodePolicy, BinaryBase64EncodePolicy, QueueServiceClient

    class Base64QueueServiceClient(QueueServiceClient):
        def get_queue_client(self, queue: Any, **kwargs: Any) -> QueueClient:
            kwargs.setdefault("message_encode_policy", BinaryBase64EncodePolicy())
            kwargs.setdefault("message_decode_policy", BinaryBase64DecodePolicy())
            return super().get_queue_client(queue, **kwargs)

    return Base64QueueServiceClient
