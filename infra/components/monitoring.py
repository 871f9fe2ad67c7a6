"""Log Analytics and a workspace-based Application Insights the app reports to with its identity.

Local (instrumentation-key) authentication is disabled: the app sends telemetry with its
managed identity (APPLICATIONINSIGHTS_AUTHENTICATION_STRING=Authorization=AAD), so the
connection string alone cannot be used to inject fake telemetry.
"""

from __future__ import annotations

import pulumi
import pulumi_azure_native as azure_native

RETENTION_DAYS = 30


class Monitoring(pulumi.ComponentResource):
    def __init__(self, name: str, *, resource_group_name: pulumi.Input[str], location: str, name_prefix: str,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("fraudresponder:infra:Monitoring", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.workspace = azure_native.operationalinsights.Workspace(
            "logs",
            workspace_name=f"{name_prefix}-logs",
            resource_group_name=resource_group_name,
            location=location,
            sku=azure_native.operationalinsights.WorkspaceSkuArgs(name="PerGB2018"),
            retention_in_days=RETENTION_DAYS,
            opts=child,
        )
        self.app_insights = azure_native.applicationinsights.Component(
            "app-insights",
            resource_name_=f"{name_prefix}-appinsights",
            resource_group_name=resource_group_name,
            location=location,
            kind="web",
            application_type="web",
            workspace_resource_id=self.workspace.id,
            ingestion_mode="LogAnalytics",
            disable_local_auth=True,
            opts=child,
        )
        self.connection_string: pulumi.Output[str] = self.app_insights.connection_string
        self.register_outputs({"app_insights_id": self.app_insights.id})
