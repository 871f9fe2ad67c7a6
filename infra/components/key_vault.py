"""Key Vault (RBAC mode, soft delete, purge protection) and the secrets the program may create.

No secret value is ever in stack config in clear text: the program creates a secret only from a
value given with ``pulumi config set --secret``. The refresh-token secret is always created
(a placeholder until the operator stores the real token) because the app's write permission is
scoped to that one secret, and a role can only be scoped to a secret that exists. Its value is
then owned by the app (rolled on every redemption), so Pulumi ignores later value changes.
"""

from __future__ import annotations

from typing import Final

import pulumi
import pulumi_azure_native as azure_native

SOFT_DELETE_RETENTION_DAYS: Final = 90
PLACEHOLDER: Final = "placeholder: store the real value with az keyvault secret set (see infra/README.md)"


class KeyVault(pulumi.ComponentResource):
    def __init__(self, name: str, *, resource_group_name: pulumi.Input[str], location: str, vault_name: str,
                 tenant_id: pulumi.Input[str], opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("fraudresponder:infra:KeyVault", name, None, opts)
        self._resource_group_name = resource_group_name
        self.vault = azure_native.keyvault.Vault(
            "vault",
            vault_name=vault_name,
            resource_group_name=resource_group_name,
            location=location,
            properties=azure_native.keyvault.VaultPropertiesArgs(
                tenant_id=tenant_id,
                sku=azure_native.keyvault.SkuArgs(family="A", name=azure_native.keyvault.SkuName.STANDARD),
                enable_rbac_authorization=True,
                enable_soft_delete=True,
                soft_delete_retention_in_days=SOFT_DELETE_RETENTION_DAYS,
                enable_purge_protection=True,
                access_policies=[],
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.vault_uri: pulumi.Output[str] = self.vault.properties.apply(lambda p: p.vault_uri)
        self.register_outputs({"vault_uri": self.vault_uri})

    def secret(self, resource_name: str, *, secret_name: str, value: pulumi.Input[str] | None,
               owned_by_app: bool = False) -> azure_native.keyvault.Secret:
        """A secret from a Pulumi secret value (or a placeholder); ``owned_by_app``: keep the app's writes."""
        stored = pulumi.Output.secret(value) if value is not None else PLACEHOLDER
        return azure_native.keyvault.Secret(
            resource_name,
            secret_name=secret_name,
            vault_name=self.vault.name,
            resource_group_name=self._resource_group_name,
            properties=azure_native.keyvault.SecretPropertiesArgs(value=stored),
            tags={"managed-by": "pulumi", "placeholder": "true" if value is None else "false"},
            opts=pulumi.ResourceOptions(
                parent=self,
                ignore_changes=["properties.value", "tags"] if owned_by_app else None,
                additional_secret_outputs=["properties"],
            ),
        )
