"""The storage account: host storage, the app's tables and queues, and the deployment container.

Shared-key access is disabled: the Functions host, the app and the deployment all use Entra ID
(managed identity or the deployer's login), so there is no account key to leak or rotate.
"""

from __future__ import annotations

from typing import Final

import pulumi
import pulumi_azure_native as azure_native

from shared.names import QUEUES, TABLES, poison_queue

DEPLOYMENT_CONTAINER: Final = "app-package"
"""Blob container Flex Consumption deploys from (functionAppConfig.deployment.storage)."""


def table_names(prefix: str) -> list[str]:
    """The app's tables as the app names them: TABLE_NAME_PREFIX + name."""
    return [f"{prefix}{name}" for name in TABLES]


def queue_names() -> list[str]:
    """Every queue the app and the host use: each work queue and its poison queue."""
    return [name for queue in QUEUES for name in (queue, poison_queue(queue))]


class Storage(pulumi.ComponentResource):
    """Storage account (HTTPS, TLS 1.2, no public blobs, no shared key) and what lives in it."""

    def __init__(self, name: str, *, resource_group_name: pulumi.Input[str], location: str, account_name: str,
                 table_prefix: str, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("fraudresponder:infra:Storage", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.account = azure_native.storage.StorageAccount(
            "storage",
            account_name=account_name,
            resource_group_name=resource_group_name,
            location=location,
            kind="StorageV2",
            sku=azure_native.storage.SkuArgs(name="Standard_LRS"),
            enable_https_traffic_only=True,
            minimum_tls_version="TLS1_2",
            allow_blob_public_access=False,
            allow_shared_key_access=False,
            default_to_o_auth_authentication=True,
            allow_cross_tenant_replication=False,
            opts=child,
        )
        self.account_name: pulumi.Output[str] = self.account.name
        self.blob_endpoint = pulumi.Output.concat("https://", self.account.name, ".blob.core.windows.net/")
        self.deployment_container = azure_native.storage.BlobContainer(
            "deployment-container",
            account_name=self.account.name,
            resource_group_name=resource_group_name,
            container_name=DEPLOYMENT_CONTAINER,
            public_access=azure_native.storage.PublicAccess.NONE,
            opts=child,
        )
        self.deployment_container_url = pulumi.Output.concat(self.blob_endpoint, DEPLOYMENT_CONTAINER)
        self.tables = [
            azure_native.storage.Table(f"table-{table}", account_name=self.account.name,
                                       resource_group_name=resource_group_name, table_name=table, opts=child)
            for table in table_names(table_prefix)
        ]
        self.queues = [
            azure_native.storage.Queue(f"queue-{queue}", account_name=self.account.name,
                                       resource_group_name=resource_group_name, queue_name=queue, opts=child)
            for queue in queue_names()
        ]
        self.register_outputs({"account_name": self.account.name})
