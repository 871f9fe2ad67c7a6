"""The Flex Consumption (FC1) plan and the function app: Python 3.11, system identity, no FTP.

On Flex the runtime (python 3.11) and the deployment storage live in ``functionAppConfig``;
settings Flex rejects or ignores (FUNCTIONS_WORKER_RUNTIME, FUNCTIONS_EXTENSION_VERSION,
WEBSITE_RUN_FROM_PACKAGE, content-share settings, ...) are never set.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import pulumi
import pulumi_azure_native as azure_native

from shared.names import STORAGE_CONNECTION

PYTHON_VERSION: Final = "3.11"
WEBHOOK_ROUTE: Final = "api/webhooks/partner-center"

FLEX_REJECTED_SETTINGS: Final = frozenset({
    "FUNCTIONS_WORKER_RUNTIME", "FUNCTIONS_EXTENSION_VERSION", "FUNCTIONS_WORKER_RUNTIME_VERSION",
    "FUNCTIONS_MAX_HTTP_CONCURRENCY", "FUNCTIONS_WORKER_PROCESS_COUNT", "FUNCTIONS_WORKER_DYNAMIC_CONCURRENCY_ENABLED",
    "SCM_DO_BUILD_DURING_DEPLOYMENT", "ENABLE_ORYX_BUILD", "WEBSITE_RUN_FROM_PACKAGE", "WEBSITE_CONTENTSHARE",
    "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING", "WEBSITE_CONTENTOVERVNET", "WEBSITE_NODE_DEFAULT_VERSION",
    "WEBSITE_MAX_DYNAMIC_APPLICATION_SCALE_OUT", "WEBSITE_SKIP_CONTENTSHARE_VALIDATION", "WEBSITE_VNET_ROUTE_ALL",
    "WEBSITE_DNS_SERVER", "AzureWebJobsStorage",
})
"""Settings Flex Consumption rejects, plus the key-based storage connection string we never use."""


def platform_settings(*, storage_account_name: pulumi.Input[str],
                      app_insights_connection_string: pulumi.Input[str]) -> dict[str, pulumi.Input[str]]:
    """Host settings that are not app settings: identity-based storage and telemetry."""
    return {
        f"{STORAGE_CONNECTION}__accountName": storage_account_name,
        "APPLICATIONINSIGHTS_CONNECTION_STRING": app_insights_connection_string,
        "APPLICATIONINSIGHTS_AUTHENTICATION_STRING": "Authorization=AAD",
    }


class FunctionApp(pulumi.ComponentResource):
    def __init__(self, name: str, *, resource_group_name: pulumi.Input[str], location: str, app_name: str,
                 plan_name: str, deployment_container_url: pulumi.Input[str], settings: Mapping[str, pulumi.Input[str]],
                 maximum_instances: int, instance_memory_mb: int,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("fraudresponder:infra:FunctionApp", name, None, opts)
        rejected = sorted(FLEX_REJECTED_SETTINGS.intersection(settings))
        if rejected:
            raise ValueError(f"app settings {rejected} are rejected by Flex Consumption; remove them")
        child = pulumi.ResourceOptions(parent=self)
        web = azure_native.web
        self.plan = web.AppServicePlan(
            "plan",
            name=plan_name,
            resource_group_name=resource_group_name,
            location=location,
            kind="functionapp",
            reserved=True,  # Linux
            sku=web.SkuDescriptionArgs(name="FC1", tier="FlexConsumption"),
            opts=child,
        )
        self.app = web.WebApp(
            "app",
            name=app_name,
            resource_group_name=resource_group_name,
            location=location,
            kind="functionapp,linux",
            reserved=True,
            server_farm_id=self.plan.id,
            https_only=True,
            client_affinity_enabled=False,
            identity=web.ManagedServiceIdentityArgs(type=web.ManagedServiceIdentityType.SYSTEM_ASSIGNED),
            function_app_config=web.FunctionAppConfigArgs(
                deployment=web.FunctionsDeploymentArgs(
                    storage=web.FunctionsDeploymentStorageArgs(
                        type=web.FunctionsDeploymentStorageType.BLOB_CONTAINER,
                        value=deployment_container_url,
                        authentication=web.FunctionsDeploymentStorageAuthenticationArgs(
                            type=web.AuthenticationType.SYSTEM_ASSIGNED_IDENTITY,
                        ),
                    ),
                ),
                runtime=web.FunctionsRuntimeArgs(name=web.RuntimeName.PYTHON, version=PYTHON_VERSION),
                scale_and_concurrency=web.FunctionsScaleAndConcurrencyArgs(
                    maximum_instance_count=maximum_instances,
                    instance_memory_mb=instance_memory_mb,
                ),
            ),
            site_config=web.SiteConfigArgs(
                app_settings=[web.NameValuePairArgs(name=key, value=value) for key, value in sorted(settings.items())],
                ftps_state=web.FtpsState.DISABLED,
                min_tls_version=web.SupportedTlsVersions.SUPPORTED_TLS_VERSIONS_1_2,
                scm_min_tls_version=web.SupportedTlsVersions.SUPPORTED_TLS_VERSIONS_1_2,
                http20_enabled=True,
                remote_debugging_enabled=False,
            ),
            opts=child,
        )
        # Basic-auth publishing credentials off for FTP and for the SCM (Kudu) site: deployments
        # go through ARM with Entra ID (OneDeploy), never a publishing profile.
        self.ftp_basic_auth = web.WebAppFtpAllowed(
            "ftp-basic-auth-off", name=self.app.name, resource_group_name=resource_group_name, allow=False, opts=child)
        self.scm_basic_auth = web.WebAppScmAllowed(
            "scm-basic-auth-off", name=self.app.name, resource_group_name=resource_group_name, allow=False, opts=child)
        self.principal_id: pulumi.Output[str] = self.app.identity.apply(lambda i: i.principal_id if i else "")
        self.default_host_name: pulumi.Output[str] = self.app.default_host_name
        self.webhook_url = pulumi.Output.concat("https://", self.app.default_host_name, "/", WEBHOOK_ROUTE)
        self.register_outputs({"app_name": self.app.name, "webhook_url": self.webhook_url})
