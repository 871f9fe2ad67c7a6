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
_CLIENT_KWARGS: dict[str, Any] = {"connection_timeout": 5, "read_timeout": 20, "retry_total": 3}


def _credential(conn: StorageConnection) -> Any:
    from azure.identity import DefaultAzureCredential

    if conn.client_id:
        return DefaultAzureCredential(managed_identity_client_id=conn.client_id)
    return DefaultAzureCredential()


def table_service(conn: StorageConnection) -> TableServiceClient:
    from azure.data.tables import TableServiceClient

    if conn.connection_string:
        return TableServiceClient.from_connection_string(conn.connection_string, **_CLIENT_KWARGS)
    return TableServiceClient(endpoint=conn.table_service_uri, credential=_credential(conn), **_CLIENT_KWARGS)


def queue_service(conn: StorageConnection) -> QueueServiceClient:
    """Queue service whose queue clients send and read base64, as the Functions trigger expects.

    The SDK does not pass encode/decode policies given to a QueueServiceClient on to the clients
    ``get_queue_client`` returns (they would send plain text, which the Functions host moves to
    the poison queue), so the returned client adds them there.
    """
    cls = _base64_queue_service_class()
    if conn.connection_string:
        return cls.from_connection_string(conn.connection_string, **_CLIENT_KWARGS)  # type: ignore[no-any-return]
    return cls(account_url=conn.queue_service_uri, credential=_credential(conn), **_CLIENT_KWARGS)  # type: ignore[no-any-return]


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
