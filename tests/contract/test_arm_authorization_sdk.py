"""ARM role assignments (Microsoft.Authorization, 2022-04-01) driven by azure-mgmt-authorization, unchanged.

What remove_role_assignments relies on: list at a scope (with ``atScope()`` and ``principalId``
filters), get, delete (200 with the assignment, 204 when there is none) and create with a given
name (201; 409 ``RoleAssignmentExists`` the second time), each filling the SDK's models; errors
surface as the SDK's typed errors with ARM's code. The token is the partner admin agent's App+User
token in Fabrikam's tenant, who is Owner there (admin-on-behalf-of / GDAP).
"""

from __future__ import annotations

import pytest
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.mgmt.authorization import AuthorizationManagementClient
from azure.mgmt.authorization.v2022_04_01.models import RoleAssignmentCreateParameters

from sandbox import ids
from sandbox.core import Sandbox
from tests.contract.conftest import RefreshTokenCredential, arm_client
from tests.contract.routes import covers

ROUTE = "/subscriptions/{s}/providers/Microsoft.Authorization/roleAssignments"
SCOPE = f"/subscriptions/{ids.SUB_FABRIKAM_PROD}"
OWNER = f"{SCOPE}/providers/Microsoft.Authorization/roleDefinitions/{ids.OWNER_ROLE_DEFINITION}"


@pytest.fixture
def client(fresh_sandbox: Sandbox) -> AuthorizationManagementClient:
    credential = RefreshTokenCredential(fresh_sandbox, ids.CUSTOMER_FABRIKAM)
    return arm_client(AuthorizationManagementClient, fresh_sandbox, credential, ids.SUB_FABRIKAM_PROD)


@covers("arm", "GET " + ROUTE, "GET " + ROUTE + "/{name}")
def test_list_and_get_fill_the_sdk_models(client: AuthorizationManagementClient) -> None:
    listed = list(client.role_assignments.list_for_subscription())
    rogue = next(a for a in listed if a.name == ids.ROGUE_ROLE_ASSIGNMENT_NAME)
    assert rogue.id == ids.ROGUE_ROLE_ASSIGNMENT_ID and rogue.type == "Microsoft.Authorization/roleAssignments"
    assert (rogue.principal_id, rogue.principal_type, rogue.role_definition_id, rogue.scope) == \
        (ids.ROGUE_SP_ID, "ServicePrincipal", OWNER, SCOPE)
    assert rogue.created_by == ids.COMPROMISED_USER_ID and rogue.created_on is not None
    mine = list(client.role_assignments.list_for_scope(SCOPE, filter=f"principalId eq '{ids.ROGUE_SP_ID}'"))
    assert [a.name for a in mine] == [ids.ROGUE_ROLE_ASSIGNMENT_NAME]
    assert {a.scope for a in client.role_assignments.list_for_scope(SCOPE, filter="atScope()")} == {SCOPE}

    got = client.role_assignments.get(SCOPE, ids.ROGUE_ROLE_ASSIGNMENT_NAME)
    assert got.as_dict() == rogue.as_dict()
    with pytest.raises(ResourceNotFoundError) as missing:
        client.role_assignments.get(SCOPE, "00000000-0000-4000-8000-00000000dead")
    assert missing.value.error is not None and missing.value.error.code == "RoleAssignmentNotFound"
    with pytest.raises(HttpResponseError) as bad:
        list(client.role_assignments.list_for_scope(SCOPE, filter="roleDefinitionId eq 'x'"))
    assert bad.value.status_code == 400


@covers("arm", "DELETE " + ROUTE + "/{name}", "PUT " + ROUTE + "/{name}")
def test_delete_then_recreate_with_the_same_name(client: AuthorizationManagementClient) -> None:
    deleted = client.role_assignments.delete(SCOPE, ids.ROGUE_ROLE_ASSIGNMENT_NAME)
    assert deleted is not None and deleted.principal_id == ids.ROGUE_SP_ID
    assert client.role_assignments.delete(SCOPE, ids.ROGUE_ROLE_ASSIGNMENT_NAME) is None  # 204: nothing there
    with pytest.raises(ResourceNotFoundError):
        client.role_assignments.get(SCOPE, ids.ROGUE_ROLE_ASSIGNMENT_NAME)

    wanted = RoleAssignmentCreateParameters(role_definition_id=OWNER, principal_id=ids.ROGUE_SP_ID,
                                            principal_type="ServicePrincipal")
    created = client.role_assignments.create(SCOPE, ids.ROGUE_ROLE_ASSIGNMENT_NAME, wanted)
    assert (created.id, created.principal_id, created.role_definition_id, created.principal_type) == \
        (ids.ROGUE_ROLE_ASSIGNMENT_ID, ids.ROGUE_SP_ID, OWNER, "ServicePrincipal")
    with pytest.raises(ResourceExistsError) as again:
        client.role_assignments.create(SCOPE, ids.ROGUE_ROLE_ASSIGNMENT_NAME, wanted)
    assert again.value.error is not None and again.value.error.code == "RoleAssignmentExists"
    unknown_role = RoleAssignmentCreateParameters(
        role_definition_id=f"{SCOPE}/providers/Microsoft.Authorization/roleDefinitions/00000000-0000-0000-0000-000000000000",
        principal_id=ids.ROGUE_SP_ID)
    with pytest.raises(HttpResponseError) as refused:
        client.role_assignments.create(SCOPE, "11111111-0000-4000-8000-000000000001", unknown_role)
    assert refused.value.status_code == 400 and refused.value.error is not None
    assert refused.value.error.code == "RoleDefinitionDoesNotExist"
