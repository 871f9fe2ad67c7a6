"""Wires the components into the whole system; ``__main__.py`` calls ``build_stack``.

Kept apart from ``__main__.py`` so the unit tests can run the same wiring under Pulumi mocks.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_azure_native as azure_native
from components import access
from components.config import StackConfig
from components.deploy import PackageDeployment
from components.function_app import FunctionApp, platform_settings
from components.key_vault import KeyVault
from components.monitoring import Monitoring
from components.package import app_files, content_hash
from components.storage import Storage


@dataclass
class Stack:
    """The resources tests and outputs need."""

    resource_group: azure_native.resources.ResourceGroup
    storage: Storage
    key_vault: KeyVault
    monitoring: Monitoring
    function_app: FunctionApp
    role_assignments: dict[str, azure_native.authorization.RoleAssignment]
    deployment: PackageDeployment | None
    settings: dict[str, pulumi.Input[str]]


def build_stack(cfg: StackConfig, *, repo_root: Path, package_path: str = "") -> Stack:
    """Declare every resource. ``package_path``: the built zip ('' in preview: only the hash matters)."""
    client = azure_native.authorization.get_client_config_output()
    rg = azure_native.resources.ResourceGroup("resource-group", resource_group_name=cfg.resource_group_name,
                                              location=cfg.location)
    monitoring = Monitoring("monitoring", name_prefix=cfg.name_prefix, resource_group_name=rg.name,
                            location=cfg.location)
    storage = Storage("storage", account_name=cfg.storage_account_name, resource_group_name=rg.name,
                      location=cfg.location, table_prefix=cfg.app_settings.get("TABLE_NAME_PREFIX", ""))
    vault = KeyVault("key-vault", vault_name=cfg.key_vault_name, tenant_id=client.tenant_id,
                     resource_group_name=rg.name, location=cfg.location)

    settings = cfg.app_settings
    refresh_token = vault.secret("secret-refresh-token", secret_name=settings["REFRESH_TOKEN_SECRET_NAME"],
                                 value=cfg.secrets.get("refreshToken"), owned_by_app=True)
    for key, resource_name, setting in (
        ("partnerAppClientSecret", "secret-partner-app", "PARTNER_APP_SECRET_NAME"),
        ("graphAppClientSecret", "secret-graph-app", "GRAPH_APP_SECRET_NAME"),
        ("notifyWebhookUrl", "secret-notify-webhook", "NOTIFY_WEBHOOK_SECRET_NAME"),
    ):
        if key in cfg.secrets:
            vault.secret(resource_name, secret_name=settings[setting], value=cfg.secrets[key])

    app_settings: dict[str, pulumi.Input[str]] = {
        **settings,
        "KEY_VAULT_URL": vault.vault_uri.apply(lambda uri: uri.rstrip("/")),
        **platform_settings(storage_account_name=storage.account.name,
                            app_insights_connection_string=monitoring.connection_string),
    }
    func = FunctionApp(
        "function-app", app_name=cfg.function_app_name, plan_name=f"{cfg.name_prefix}-plan-{cfg.suffix}",
        deployment_container_url=storage.deployment_container_url, settings=app_settings,
        maximum_instances=cfg.maximum_instances, instance_memory_mb=cfg.instance_memory_mb,
        resource_group_name=rg.name, location=cfg.location,
    )

    sub = client.subscription_id
    app_id = func.principal_id
    grants: dict[str, azure_native.authorization.RoleAssignment] = {}

    def grant(name: str, role: str, scope: pulumi.Input[str], principal: pulumi.Input[str],
              principal_type: str | None = "ServicePrincipal") -> None:
        grants[name] = access.grant(name, role=role, scope=scope, principal_id=principal, subscription_id=sub,
                                    principal_type=principal_type)

    # The app (system-assigned identity).
    grant("app-blob-owner", access.STORAGE_BLOB_DATA_OWNER, storage.account.id, app_id)
    grant("app-queue-contributor", access.STORAGE_QUEUE_DATA_CONTRIBUTOR, storage.account.id, app_id)
    grant("app-table-contributor", access.STORAGE_TABLE_DATA_CONTRIBUTOR, storage.account.id, app_id)
    grant("app-telemetry-publisher", access.MONITORING_METRICS_PUBLISHER, monitoring.app_insights.id, app_id)
    grant("app-secrets-user", access.KEY_VAULT_SECRETS_USER, vault.vault.id, app_id)
    grant("app-refresh-token-officer", access.KEY_VAULT_SECRETS_OFFICER, refresh_token.id, app_id)
    if cfg.write_customer_secrets:
        grant("app-customer-secrets-officer", access.KEY_VAULT_SECRETS_OFFICER, vault.vault.id, app_id)
    # The deployer (whoever runs `pulumi up`): upload the package, mint its SAS, fill in secrets.
    deployer = client.object_id
    grant("deployer-package-writer", access.STORAGE_BLOB_DATA_CONTRIBUTOR, storage.deployment_container.id,
          deployer, None)
    grant("deployer-sas-delegator", access.STORAGE_BLOB_DELEGATOR, storage.account.id, deployer, None)
    if cfg.deployer_secrets_officer:
        grant("deployer-secrets-officer", access.KEY_VAULT_SECRETS_OFFICER, vault.vault.id, deployer, None)

    deployment = None
    if cfg.deploy_code:
        files = app_files(repo_root)
        policy = settings.get("POLICY_PATH", "")
        if policy and not Path(policy).is_absolute() and policy not in files:
            pulumi.log.warn(f"POLICY_PATH {policy} is not in the deployment package; the app will not start")
        deployment = PackageDeployment(
            "code", package_path=package_path, content_hash=content_hash(repo_root, files),
            container_url=storage.deployment_container_url, subscription_id=sub, resource_group=rg.name,
            app_name=func.app.name,
            opts=pulumi.ResourceOptions(depends_on=[func, storage.deployment_container, *grants.values()]),
        )
    return Stack(rg, storage, vault, monitoring, func, grants, deployment, app_settings)
