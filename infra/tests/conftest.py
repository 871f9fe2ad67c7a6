"""Pulumi unit-test harness: mocks installed before the program modules are imported.

``deploy(config)`` runs the real wiring (``infra/stack.py``) against ``RecordingMocks`` and
returns every resource registration with its resolved inputs, as the engine would receive them.
No CLI and no cloud: the mocks answer for Azure.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi

REPO_ROOT = Path(__file__).resolve().parents[2]
INFRA_DIR = REPO_ROOT / "infra"
for _path in (str(REPO_ROOT), str(INFRA_DIR)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

PROJECT = "csp-fraud-responder"
SUBSCRIPTION = "00000000-0000-4000-8000-0000000000aa"
TENANT = "00000000-0000-4000-8000-0000000000bb"
DEPLOYER = "00000000-0000-4000-8000-0000000000cc"
APP_PRINCIPAL = "00000000-0000-4000-8000-0000000000dd"

_ARM_TYPES = {
    "azure-native:resources:ResourceGroup": "",
    "azure-native:storage:StorageAccount": "Microsoft.Storage/storageAccounts",
    "azure-native:keyvault:Vault": "Microsoft.KeyVault/vaults",
    "azure-native:web:WebApp": "Microsoft.Web/sites",
    "azure-native:web:AppServicePlan": "Microsoft.Web/serverfarms",
    "azure-native:insights:Component": "Microsoft.Insights/components",
    "azure-native:applicationinsights:Component": "Microsoft.Insights/components",
    "azure-native:operationalinsights:Workspace": "Microsoft.OperationalInsights/workspaces",
}


@dataclass
class Registered:
    typ: str
    name: str
    inputs: dict[str, Any]
    id: str


@dataclass
class RecordingMocks(pulumi.runtime.Mocks):
    """Records each resource; answers with ARM-shaped ids and the outputs the program reads."""

    resources: list[Registered] = field(default_factory=list)

    def _id(self, typ: str, inputs: Mapping[str, Any], name: str) -> str:
        rg = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{inputs.get('resourceGroupName', 'rg')}"
        if typ == "azure-native:resources:ResourceGroup":
            return f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{inputs['resourceGroupName']}"
        if typ == "azure-native:storage:BlobContainer":
            return (f"{rg}/providers/Microsoft.Storage/storageAccounts/{inputs['accountName']}"
                    f"/blobServices/default/containers/{inputs['containerName']}")
        if typ == "azure-native:keyvault:Secret":
            return f"{rg}/providers/Microsoft.KeyVault/vaults/{inputs['vaultName']}/secrets/{inputs['secretName']}"
        resource_name = (inputs.get("accountName") or inputs.get("vaultName") or inputs.get("name")
                         or inputs.get("resourceName") or inputs.get("workspaceName") or name)
        return f"{rg}/providers/{_ARM_TYPES.get(typ, typ)}/{resource_name}"

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        inputs = dict(args.inputs)
        resource_id = self._id(args.typ, inputs, args.name)
        outputs: dict[str, Any] = dict(inputs)
        if args.typ == "azure-native:storage:StorageAccount":
            outputs["name"] = inputs["accountName"]
        elif args.typ == "azure-native:keyvault:Vault":
            outputs["name"] = inputs["vaultName"]
            outputs["properties"] = {**inputs["properties"], "vaultUri": f"https://{inputs['vaultName']}.vault.azure.net/"}
        elif args.typ == "azure-native:resources:ResourceGroup":
            outputs["name"] = inputs["resourceGroupName"]
        elif args.typ == "azure-native:web:WebApp":
            outputs["identity"] = {**inputs["identity"], "principalId": APP_PRINCIPAL, "tenantId": TENANT}
            outputs["defaultHostName"] = f"{inputs['name']}.azurewebsites.net"
        elif args.typ == "azure-native:applicationinsights:Component":
            outputs["connectionString"] = "InstrumentationKey=00000000-0000-0000-0000-000000000000"
        self.resources.append(Registered(args.typ, args.name, inputs, resource_id))
        return resource_id, outputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        if args.token == "azure-native:authorization:getClientConfig":
            return {"subscriptionId": SUBSCRIPTION, "tenantId": TENANT, "objectId": DEPLOYER,
                    "clientId": "00000000-0000-4000-8000-0000000000ee"}, []
        raise AssertionError(f"unexpected invoke {args.token}: add it to infra/tests/conftest.py")

    def of_type(self, typ: str) -> list[Registered]:
        return [r for r in self.resources if r.typ == typ]

    def one(self, typ: str) -> Registered:
        found = self.of_type(typ)
        assert len(found) == 1, f"expected one {typ}, found {len(found)}"
        return found[0]

    def named(self, name: str) -> Registered:
        return next(r for r in self.resources if r.name == name)


def deploy(config: Mapping[str, str] | None = None, *, secret_keys: tuple[str, ...] = (),
           after: Callable[[Any], None] | None = None) -> RecordingMocks:
    """Run the program's wiring under fresh mocks with this stack config; return the recordings."""
    mocks = RecordingMocks()
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack="test", preview=False)
    values = {"location": "swedencentral", "namePrefix": "contoso", **(config or {})}
    pulumi.runtime.set_all_config({f"{PROJECT}:{k}": v for k, v in values.items()},
                                  secret_keys=[f"{PROJECT}:{k}" for k in secret_keys])

    from components.config import read_config
    from stack import build_stack

    @pulumi.runtime.test  # type: ignore[untyped-decorator]
    def program() -> pulumi.Output[Any]:
        stack = build_stack(read_config(), repo_root=REPO_ROOT, package_path="")
        if after is not None:
            after(stack)
        return pulumi.Output.all(stack.function_app.webhook_url, stack.key_vault.vault_uri)

    program()
    return mocks
