"""Service clients built from the storage connection settings.

Imported lazily by handlers: azure.data.tables and azure.storage.queue stay out of cold start.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shared.settings import StorageConnection

if TYPE_CHECKING:
    from azure.data.tables import TableServiceClient
    from azure.storage.queue import QueueServiceClient

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
    """Queue client whose messages are base64, as the Functions queue trigger expects."""
    from azure.storage.queue import BinaryBase64DecodePolicy, BinaryBase64EncodePolicy, QueueServiceClient

    policies: dict[str, Any] = {
        "message_encode_policy": BinaryBase64EncodePolicy(),
        "message_decode_policy": BinaryBase64DecodePolicy(),
    }
    if conn.connection_string:
        return QueueServiceClient.from_connection_string(conn.connection_string, **policies, **_CLIENT_KWARGS)
    return QueueServiceClient(account_url=conn.queue_service_uri, credential=_credential(conn),
                              **policies, **_CLIENT_KWARGS)
