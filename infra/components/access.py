"""Role assignments: each built-in role named once, each assignment named deterministically.

A role assignment's name is a GUID that must be unique per scope; a random one makes every
``pulumi up`` on a fresh state try to create a duplicate (``RoleAssignmentExists``). We derive
it with uuid5 from (scope, principal, role), as Bicep's ``guid()`` does, so the same grant
always has the same name.
"""

from __future__ import annotations

import uuid
from typing import Final

import pulumi
import pulumi_azure_native as azure_native

# Built-in role definition GUIDs (the same in every tenant).
STORAGE_BLOB_DATA_OWNER: Final = "b7e6dc6d-f1e8-4753-8033-0f276bb0955b"
STORAGE_BLOB_DATA_CONTRIBUTOR: Final = "ba92f5b4-2d11-453d-a403-e96b0029c9fe"
STORAGE_BLOB_DELEGATOR: Final = "db58b8e5-c6ad-4a2a-8342-4190687cbf4a"
STORAGE_QUEUE_DATA_CONTRIBUTOR: Final = "974c5e8b-45b9-4653-ba55-5f855dd0fb88"
STORAGE_TABLE_DATA_CONTRIBUTOR: Final = "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3"
KEY_VAULT_SECRETS_USER: Final = "4633458b-17de-408a-b874-0445c86b69e6"
KEY_VAULT_SECRETS_OFFICER: Final = "b86a8fe4-44ce-4948-aee5-eccb2c155cd7"
MONITORING_METRICS_PUBLISHER: Final = "3913510d-42f4-4e42-8a64-420c390055eb"

ROLE_NAMES: Final = {
    STORAGE_BLOB_DATA_OWNER: "Storage Blob Data Owner",
    STORAGE_BLOB_DATA_CONTRIBUTOR: "Storage Blob Data Contributor",
    STORAGE_BLOB_DELEGATOR: "Storage Blob Delegator",
    STORAGE_QUEUE_DATA_CONTRIBUTOR: "Storage Queue Data Contributor",
    STORAGE_TABLE_DATA_CONTRIBUTOR: "Storage Table Data Contributor",
    KEY_VAULT_SECRETS_USER: "Key Vault Secrets User",
    KEY_VAULT_SECRETS_OFFICER: "Key Vault Secrets Officer",
    MONITORING_METRICS_PUBLISHER: "Monitoring Metrics Publisher",
}

_NAMESPACE: Final = uuid.UUID("5f0c7d1e-6a43-4d55-9a8e-2f1c0b7e9d31")
"""Fixed namespace for assignment names; changing it would rename (recreate) every assignment."""


def assignment_name(scope: str, principal_id: str, role_guid: str) -> str:
    """The deterministic role-assignment name (a GUID) for this scope, principal and role."""
    return str(uuid.uuid5(_NAMESPACE, f"{scope.lower()}|{principal_id.lower()}|{role_guid.lower()}"))


def role_definition_id(subscription_id: str, role_guid: str) -> str:
    return f"/subscriptions/{subscription_id}/providers/Microsoft.Authorization/roleDefinitions/{role_guid}"


def grant(
    name: str,
    *,
    role: str,
    scope: pulumi.Input[str],
    principal_id: pulumi.Input[str],
    subscription_id: pulumi.Input[str],
    principal_type: str | None = "ServicePrincipal",
    opts: pulumi.ResourceOptions | None = None,
) -> azure_native.authorization.RoleAssignment:
    """Assign ``role`` (a GUID from this module) to ``principal_id`` on ``scope``.

    ``principal_type`` ServicePrincipal avoids the replication-delay failure right after a managed
    identity is created; None lets ARM detect it (the deployer may be a user or a service principal).
    """
    if role not in ROLE_NAMES:
        raise ValueError(f"unknown role {role}: add it to infra/components/access.py")
    return azure_native.authorization.RoleAssignment(
        name,
        scope=scope,
        principal_id=principal_id,
        principal_type=principal_type,
        role_definition_id=pulumi.Output.from_input(subscription_id).apply(lambda sub: role_definition_id(sub, role)),
        role_assignment_name=pulumi.Output.all(scope, principal_id).apply(
            lambda args: assignment_name(str(args[0]), str(args[1]), role)
        ),
        description=f"{ROLE_NAMES[role]} for the CSP fraud responder ({name})",
        opts=opts,
    )
