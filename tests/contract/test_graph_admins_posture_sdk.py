"""Graph stand-in for the Global Administrator actions and the partner posture, driven by msgraph-sdk (v1.0)
and msgraph-beta-sdk, unchanged: authentication methods, the directory audit log, the partner security
score and its requirements, and GDAP relationships."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from kiota_abstractions.base_request_configuration import RequestConfiguration

from sandbox import ids
from sandbox.core import Sandbox
from tests.contract.conftest import GRAPH_APP_SECRET, RefreshTokenCredential, app_credential, graph_client, run
from tests.contract.routes import covers

OPS_ID = "dddddddd-0003-4000-8000-000000000003"


def customer_client(sandbox: Sandbox, tenant: str = ids.CUSTOMER_FABRIKAM) -> Any:
    return graph_client(sandbox, RefreshTokenCredential(sandbox, tenant))


def partner_app_client(sandbox: Sandbox, *, beta: bool) -> Any:
    return graph_client(sandbox, app_credential(sandbox, ids.GRAPH_APP_CLIENT_ID, GRAPH_APP_SECRET), beta=beta)


@covers("graph", "GET /v1.0/users/{user}/authentication/emailMethods",
        "GET /v1.0/users/{user}/authentication/phoneMethods")
def test_email_and_phone_methods_fill_the_sdk_models(fresh_sandbox: Sandbox) -> None:
    from msgraph.generated.models.authentication_phone_type import AuthenticationPhoneType
    from msgraph.generated.models.email_authentication_method import EmailAuthenticationMethod
    from msgraph.generated.models.phone_authentication_method import PhoneAuthenticationMethod

    async def scenario() -> tuple[Any, Any, Any]:
        client = customer_client(fresh_sandbox)
        emails = await client.users.by_user_id(OPS_ID).authentication.email_methods.get()
        phones = await client.users.by_user_id(OPS_ID).authentication.phone_methods.get()
        admin_phones = await client.users.by_user_id(ids.FABRIKAM_GLOBAL_ADMIN_UPN).authentication.phone_methods.get()
        return emails, phones, admin_phones

    emails, phones, admin_phones = run(scenario())
    [email] = emails.value
    assert isinstance(email, EmailAuthenticationMethod) and email.email_address == "fabrikam-ops@contoso.example"
    assert email.id == "3ddfcfc8-9383-446f-83cc-3ab9be4be18f" and isinstance(email.created_date_time, dt.datetime)
    [phone] = phones.value
    assert isinstance(phone, PhoneAuthenticationMethod) and phone.phone_number == "+44 7700900461"
    assert phone.phone_type == AuthenticationPhoneType.Mobile and phone.created_date_time is None
    assert phone.id == "3179e48a-750b-4051-897c-87b9720928f7"
    assert isinstance(admin_phones.value[0].created_date_time, dt.datetime)


def test_authentication_methods_need_their_own_permission(fresh_sandbox: Sandbox) -> None:
    from msgraph.generated.models.o_data_errors.o_data_error import ODataError

    async def scenario() -> None:  # the app-only Graph app has no UserAuthenticationMethod permission
        await partner_app_client(fresh_sandbox, beta=False).users.by_user_id(
            "admin-agent@contoso-csp.example").authentication.phone_methods.get()

    with pytest.raises(ODataError) as caught:
        run(scenario())
    assert caught.value.response_status_code == 403


@covers("graph", "GET /v1.0/auditLogs/directoryAudits")
def test_directory_audits_filter_by_service_and_time(fresh_sandbox: Sandbox) -> None:
    from msgraph.generated.audit_logs.directory_audits.directory_audits_request_builder import (
        DirectoryAuditsRequestBuilder,
    )

    since = (dt.datetime.now(dt.UTC) - dt.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")

    async def scenario() -> tuple[Any, Any]:
        client = customer_client(fresh_sandbox)
        query = DirectoryAuditsRequestBuilder.DirectoryAuditsRequestBuilderGetQueryParameters(
            filter=f"activityDateTime ge {since} and loggedByService eq 'Authentication Methods'")
        filtered = await client.audit_logs.directory_audits.get(RequestConfiguration(query_parameters=query))
        everything = await client.audit_logs.directory_audits.get()
        return filtered, everything

    filtered, everything = run(scenario())
    [event] = filtered.value
    assert event.activity_display_name == "User registered security info"
    assert event.logged_by_service == "Authentication Methods" and isinstance(event.activity_date_time, dt.datetime)
    assert event.target_resources[0].id == OPS_ID and event.target_resources[0].user_principal_name
    assert event.initiated_by.user.user_principal_name == "ops@fabrikam.example"
    assert len(everything.value) == 2


@covers("graph", "GET /beta/security/partner/securityScore", "GET /beta/security/partner/securityScore/requirements")
def test_partner_security_score_and_requirements_parse_into_their_kinds(fresh_sandbox: Sandbox) -> None:
    from msgraph_beta.generated.models.partner.security.admins_mfa_enforced_security_requirement import (
        AdminsMfaEnforcedSecurityRequirement,
    )
    from msgraph_beta.generated.models.partner.security.compliance_status import ComplianceStatus
    from msgraph_beta.generated.models.partner.security.customers_spending_budget_security_requirement import (
        CustomersSpendingBudgetSecurityRequirement,
    )
    from msgraph_beta.generated.models.partner.security.security_requirement_type import SecurityRequirementType

    async def scenario() -> tuple[Any, Any]:
        client = partner_app_client(fresh_sandbox, beta=True)
        score = await client.security.partner.security_score.get()
        requirements = await client.security.partner.security_score.requirements.get()
        return score, requirements

    score, requirements = run(scenario())
    assert score.current_score == 62.0 and score.max_score == 100.0
    assert isinstance(score.last_refresh_date_time, dt.datetime)
    kinds = {r.requirement_type: r for r in requirements.value}
    assert set(kinds) == {SecurityRequirementType.MfaEnforcedForAdmins,
                          SecurityRequirementType.MfaEnforcedForAdminsOfCustomers,
                          SecurityRequirementType.SecurityAlertsPromptlyResolved,
                          SecurityRequirementType.SecurityContactProvided,
                          SecurityRequirementType.SpendingBudgetSetForCustomerAzureSubscriptions}
    admins = kinds[SecurityRequirementType.MfaEnforcedForAdmins]
    assert isinstance(admins, AdminsMfaEnforcedSecurityRequirement) and admins.admins_required_not_using_mfa_count == 1
    assert admins.compliance_status == ComplianceStatus.Noncomplaint  # sic: Graph's own spelling
    budget = kinds[SecurityRequirementType.SpendingBudgetSetForCustomerAzureSubscriptions]
    assert isinstance(budget, CustomersSpendingBudgetSecurityRequirement) and budget.total_customers_count == 3


def test_security_score_is_for_the_partner_tenant_only(fresh_sandbox: Sandbox) -> None:
    from msgraph_beta.generated.models.o_data_errors.o_data_error import ODataError

    async def scenario() -> None:
        await graph_client(fresh_sandbox, RefreshTokenCredential(fresh_sandbox, ids.CUSTOMER_FABRIKAM),
                           beta=True).security.partner.security_score.get()

    with pytest.raises(ODataError) as caught:
        run(scenario())
    assert caught.value.response_status_code == 403


@covers("graph", "GET /v1.0/tenantRelationships/delegatedAdminRelationships")
def test_gdap_relationships_fill_the_sdk_model(fresh_sandbox: Sandbox) -> None:
    from msgraph.generated.models.delegated_admin_relationship_status import DelegatedAdminRelationshipStatus

    async def scenario() -> Any:
        return await partner_app_client(fresh_sandbox, beta=False).tenant_relationships \
            .delegated_admin_relationships.get()

    page = run(scenario())
    by_customer = {r.customer.tenant_id: r for r in page.value}
    assert set(by_customer) == {ids.CUSTOMER_FABRIKAM, ids.CUSTOMER_NORTHWIND, ids.CUSTOMER_TAILSPIN}
    fabrikam = by_customer[ids.CUSTOMER_FABRIKAM]
    assert fabrikam.status == DelegatedAdminRelationshipStatus.Active and fabrikam.duration == dt.timedelta(days=730)
    assert [r.role_definition_id for r in fabrikam.access_details.unified_roles] == [
        "62e90394-69f5-4237-9190-012177145e10"]
    assert fabrikam.auto_extend_duration == dt.timedelta(0)
    assert by_customer[ids.CUSTOMER_NORTHWIND].auto_extend_duration == dt.timedelta(days=180)
    assert isinstance(fabrikam.end_date_time, dt.datetime)
