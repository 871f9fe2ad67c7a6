"""Graph stand-in driven by msgraph-sdk (v1.0) and msgraph-beta-sdk, unchanged.

What the SDKs send must be accepted, their models must fill with the fields the app reads, and
errors must surface as ``ODataError`` with Graph's error code.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
from kiota_abstractions.base_request_configuration import RequestConfiguration

from sandbox import ids
from sandbox.core import Sandbox
from sandbox.graph import GLOBAL_ADMIN_TEMPLATE_ID, MINING_SECURITY_ALERT_ID, GraphService
from tests.contract.conftest import GRAPH_APP_SECRET, RefreshTokenCredential, app_credential, graph_client, run
from tests.contract.routes import covers


def graph_state(sandbox: Sandbox) -> GraphService:
    service = sandbox.services["graph"]
    assert isinstance(service, GraphService)
    return service


def customer_client(sandbox: Sandbox, tenant: str = ids.CUSTOMER_FABRIKAM) -> Any:
    """v1.0 client with App+User tokens redeemed in a customer tenant (GDAP / SAM), as the app does."""
    return graph_client(sandbox, RefreshTokenCredential(sandbox, tenant))


def partner_app_client(sandbox: Sandbox, *, beta: bool) -> Any:
    """App-only client of the Graph app in the partner tenant (alerts, notification mail)."""
    return graph_client(sandbox, app_credential(sandbox, ids.GRAPH_APP_CLIENT_ID, GRAPH_APP_SECRET), beta=beta)


# -- partner security alerts (beta) ---------------------------------------------------------------


@covers("graph", "GET /beta/security/partner/securityAlerts")
def test_security_alerts_list_with_filter_top_count_and_paging(fresh_sandbox: Sandbox) -> None:
    from msgraph_beta.generated.models.partner.security.security_alert_status import SecurityAlertStatus
    from msgraph_beta.generated.security.partner.security_alerts.security_alerts_request_builder import (
        SecurityAlertsRequestBuilder,
    )

    async def scenario() -> tuple[int | None, list[Any]]:
        client = partner_app_client(fresh_sandbox, beta=True)
        query = SecurityAlertsRequestBuilder.SecurityAlertsRequestBuilderGetQueryParameters(
            filter="status eq 'active' or status eq 'investigating'", top=1, count=True)
        builder = client.security.partner.security_alerts
        page = await builder.get(RequestConfiguration(query_parameters=query))
        count, alerts = page.odata_count, list(page.value)
        while page.odata_next_link:
            page = await builder.with_url(page.odata_next_link).get()
            alerts.extend(page.value)
        return count, alerts

    count, alerts = run(scenario())
    assert count == len(alerts) >= 2
    assert {a.status for a in alerts} <= {SecurityAlertStatus.Active, SecurityAlertStatus.Investigating}
    mining = next(a for a in alerts if a.id == MINING_SECURITY_ALERT_ID)
    assert str(mining.subscription_id) == ids.SUB_FABRIKAM_PROD
    assert str(mining.customer_tenant_id) == ids.CUSTOMER_FABRIKAM
    assert {r.resource_id for r in mining.affected_resources} == {ids.MINING_VM_1, ids.MINING_VM_2}
    assert isinstance(mining.detected_date_time, dt.datetime)
    assert mining.alert_type and mining.severity is not None and mining.is_test is False


@covers("graph", "GET /beta/security/partner/securityAlerts/{id}", "PATCH /beta/security/partner/securityAlerts/{id}")
def test_security_alert_get_and_resolve(fresh_sandbox: Sandbox) -> None:
    from msgraph_beta.generated.models.partner.security.partner_security_alert import PartnerSecurityAlert
    from msgraph_beta.generated.models.partner.security.security_alert_resolved_reason import (
        SecurityAlertResolvedReason,
    )
    from msgraph_beta.generated.models.partner.security.security_alert_status import SecurityAlertStatus

    async def scenario() -> tuple[Any, Any]:
        alerts = partner_app_client(fresh_sandbox, beta=True).security.partner.security_alerts
        item = alerts.by_partner_security_alert_id(MINING_SECURITY_ALERT_ID)
        before = await item.get()
        after = await item.patch(PartnerSecurityAlert(status=SecurityAlertStatus.Resolved,
                                                      resolved_reason=SecurityAlertResolvedReason.Fraud))
        return before, after

    before, after = run(scenario())
    assert before.status == SecurityAlertStatus.Active
    assert after.status == SecurityAlertStatus.Resolved and after.resolved_reason == SecurityAlertResolvedReason.Fraud
    assert isinstance(after.resolved_on_date_time, dt.datetime) and after.resolved_by
    assert after.activity_logs[-1].status_to == SecurityAlertStatus.Resolved
    assert graph_state(fresh_sandbox).alert(MINING_SECURITY_ALERT_ID)["status"] == "resolved"


def test_security_alert_unknown_id_is_an_odata_error(fresh_sandbox: Sandbox) -> None:
    from msgraph_beta.generated.models.o_data_errors.o_data_error import ODataError

    async def scenario() -> None:
        await partner_app_client(fresh_sandbox, beta=True).security.partner.security_alerts \
            .by_partner_security_alert_id(str(uuid.uuid4())).get()

    with pytest.raises(ODataError) as caught:
        run(scenario())
    assert caught.value.response_status_code == 404
    assert caught.value.error.code == "NotFound"


# -- users ------------------------------------------------------------------------------------------


@covers("graph", "GET /v1.0/users/{user}")
def test_get_user_by_upn_and_by_id_with_select(fresh_sandbox: Sandbox) -> None:
    from msgraph.generated.users.item.user_item_request_builder import UserItemRequestBuilder

    async def scenario() -> tuple[Any, Any]:
        client = customer_client(fresh_sandbox)
        by_upn = await client.users.by_user_id(ids.COMPROMISED_USER_UPN).get()
        query = UserItemRequestBuilder.UserItemRequestBuilderGetQueryParameters(
            select=["id", "accountEnabled", "signInSessionsValidFromDateTime", "passwordProfile"])
        by_id = await client.users.by_user_id(ids.COMPROMISED_USER_ID).get(
            RequestConfiguration(query_parameters=query))
        return by_upn, by_id

    by_upn, by_id = run(scenario())
    assert by_upn.id == ids.COMPROMISED_USER_ID and by_upn.user_principal_name == ids.COMPROMISED_USER_UPN
    assert by_id.account_enabled is True and by_id.password_profile is not None


@covers("graph", "PATCH /v1.0/users/{user}")
def test_patch_user_block_sign_in_and_reset_password(fresh_sandbox: Sandbox) -> None:
    """msgraph-sdk adds "@odata.type" to the body, as OData allows; Graph accepts it."""
    from msgraph.generated.models.password_profile import PasswordProfile
    from msgraph.generated.models.user import User

    async def scenario() -> None:
        user = customer_client(fresh_sandbox).users.by_user_id(ids.COMPROMISED_USER_ID)
        await user.patch(User(account_enabled=False))
        await user.patch(User(password_profile=PasswordProfile(password="Temp-" + uuid.uuid4().hex,
                                                              force_change_password_next_sign_in=True)))

    run(scenario())
    state = graph_state(fresh_sandbox).user(ids.CUSTOMER_FABRIKAM, ids.COMPROMISED_USER_ID)
    assert state["accountEnabled"] is False
    assert state["_passwordChanges"] == 1 and state["passwordProfile"]["forceChangePasswordNextSignIn"] is True
    sent = [r.json() for r in fresh_sandbox.requests("graph") if r.method == "PATCH"]
    assert sent[0]["@odata.type"] == "#microsoft.graph.user"


def test_patch_user_with_an_unknown_property_is_refused(fresh_sandbox: Sandbox) -> None:
    from msgraph.generated.models.o_data_errors.o_data_error import ODataError
    from msgraph.generated.models.user import User

    async def scenario() -> None:
        await customer_client(fresh_sandbox).users.by_user_id(ids.COMPROMISED_USER_ID).patch(
            User(additional_data={"notAProperty": True}))

    with pytest.raises(ODataError) as caught:
        run(scenario())
    assert caught.value.response_status_code == 400 and caught.value.error.code == "Request_BadRequest"
    assert graph_state(fresh_sandbox).user(ids.CUSTOMER_FABRIKAM, ids.COMPROMISED_USER_ID)["accountEnabled"] is True


@covers("graph", "POST /v1.0/users/{user}/revokeSignInSessions")
def test_revoke_sign_in_sessions(fresh_sandbox: Sandbox) -> None:
    async def scenario() -> Any:
        return await customer_client(fresh_sandbox).users.by_user_id(ids.COMPROMISED_USER_UPN) \
            .revoke_sign_in_sessions.post()

    result = run(scenario())
    assert result.value is True
    assert graph_state(fresh_sandbox).user(ids.CUSTOMER_FABRIKAM, ids.COMPROMISED_USER_ID)["_revocations"] == 1


def test_unknown_user_is_an_odata_error_with_graphs_code(fresh_sandbox: Sandbox) -> None:
    from msgraph.generated.models.o_data_errors.o_data_error import ODataError

    async def scenario() -> None:
        await customer_client(fresh_sandbox).users.by_user_id("nobody@fabrikam.example").get()

    with pytest.raises(ODataError) as caught:
        run(scenario())
    assert caught.value.response_status_code == 404
    assert caught.value.error.code == "Request_ResourceNotFound"


# -- mail -------------------------------------------------------------------------------------------


@covers("graph", "POST /v1.0/users/{user}/sendMail")
def test_send_mail_with_the_sdks_parameter_names(fresh_sandbox: Sandbox) -> None:
    """msgraph-sdk sends the metadata's names ("Message", "SaveToSentItems"); Graph takes them."""
    from msgraph.generated.models.body_type import BodyType
    from msgraph.generated.models.email_address import EmailAddress
    from msgraph.generated.models.item_body import ItemBody
    from msgraph.generated.models.message import Message
    from msgraph.generated.models.recipient import Recipient
    from msgraph.generated.users.item.send_mail.send_mail_post_request_body import SendMailPostRequestBody

    async def scenario() -> None:
        message = Message(subject="Fraud alert", body=ItemBody(content_type=BodyType.Text, content="VMs stopped."),
                          to_recipients=[Recipient(email_address=EmailAddress(address=ids.SECURITY_CONTACT))])
        await partner_app_client(fresh_sandbox, beta=False).users.by_user_id(ids.NOTIFY_SENDER).send_mail.post(
            SendMailPostRequestBody(message=message, save_to_sent_items=False))

    run(scenario())
    (mail,) = graph_state(fresh_sandbox).sent_mail()
    assert mail["to"] == [ids.SECURITY_CONTACT] and mail["subject"] == "Fraud alert"
    assert mail["content"] == "VMs stopped." and mail["saveToSentItems"] is False


def test_send_mail_without_recipients_is_refused(fresh_sandbox: Sandbox) -> None:
    from msgraph.generated.models.message import Message
    from msgraph.generated.models.o_data_errors.o_data_error import ODataError
    from msgraph.generated.users.item.send_mail.send_mail_post_request_body import SendMailPostRequestBody

    async def scenario() -> None:
        await partner_app_client(fresh_sandbox, beta=False).users.by_user_id(ids.NOTIFY_SENDER).send_mail.post(
            SendMailPostRequestBody(message=Message(subject="nobody")))

    with pytest.raises(ODataError) as caught:
        run(scenario())
    assert caught.value.response_status_code == 400 and caught.value.error.code == "ErrorInvalidRecipients"
    assert graph_state(fresh_sandbox).sent_mail() == []


# -- applications and service principals ------------------------------------------------------------


@covers("graph", "GET /v1.0/applications/{id}", "GET /v1.0/applications(appId='{appId}')",
        "POST /v1.0/applications/{id}/addPassword", "POST /v1.0/applications/{id}/removePassword")
def test_application_get_and_rotate_password(fresh_sandbox: Sandbox) -> None:
    from msgraph.generated.applications.item.add_password.add_password_post_request_body import (
        AddPasswordPostRequestBody,
    )
    from msgraph.generated.applications.item.remove_password.remove_password_post_request_body import (
        RemovePasswordPostRequestBody,
    )
    from msgraph.generated.models.password_credential import PasswordCredential

    async def scenario() -> tuple[Any, Any, Any, Any]:
        client = customer_client(fresh_sandbox)
        by_app_id = await client.applications_with_app_id(ids.ROGUE_APP_CLIENT_ID).get()
        app = client.applications.by_application_id(ids.ROGUE_APP_ID)
        added = await app.add_password.post(AddPasswordPostRequestBody(
            password_credential=PasswordCredential(display_name="rotated by contract test")))
        await app.remove_password.post(RemovePasswordPostRequestBody(key_id=by_app_id.password_credentials[0].key_id))
        return by_app_id, added, await app.get(), None

    by_app_id, added, after, _ = run(scenario())
    assert by_app_id.id == ids.ROGUE_APP_ID and by_app_id.password_credentials[0].secret_text is None
    assert added.secret_text and isinstance(added.key_id, uuid.UUID) and isinstance(added.end_date_time, dt.datetime)
    assert [c.key_id for c in after.password_credentials] == [added.key_id]


@covers("graph", "GET /v1.0/servicePrincipals/{id}", "GET /v1.0/servicePrincipals(appId='{appId}')",
        "POST /v1.0/servicePrincipals/{id}/addPassword", "POST /v1.0/servicePrincipals/{id}/removePassword",
        "POST /v1.0/applications(appId='{appId}')/addPassword",
        "POST /v1.0/applications(appId='{appId}')/removePassword",
        "POST /v1.0/servicePrincipals(appId='{appId}')/addPassword",
        "POST /v1.0/servicePrincipals(appId='{appId}')/removePassword")
def test_service_principal_get_and_rotate_password(fresh_sandbox: Sandbox) -> None:
    from msgraph.generated.models.password_credential import PasswordCredential
    from msgraph.generated.service_principals.item.add_password.add_password_post_request_body import (
        AddPasswordPostRequestBody,
    )
    from msgraph.generated.service_principals.item.remove_password.remove_password_post_request_body import (
        RemovePasswordPostRequestBody,
    )

    async def scenario() -> tuple[Any, Any, Any]:
        client = customer_client(fresh_sandbox)
        by_app_id = await client.service_principals_with_app_id(ids.ROGUE_APP_CLIENT_ID).get()
        sp = client.service_principals.by_service_principal_id(ids.ROGUE_SP_ID)
        added = await sp.add_password.post(AddPasswordPostRequestBody(password_credential=PasswordCredential()))
        await sp.remove_password.post(RemovePasswordPostRequestBody(key_id=added.key_id))
        # The appId-addressed actions: the SDK has no builder for them, so its own with_url.
        base = f"{fresh_sandbox.url('graph')}/v1.0"
        for kind in ("applications", "servicePrincipals"):
            url = f"{base}/{kind}(appId='{ids.ROGUE_APP_CLIENT_ID}')"
            extra = await sp.add_password.with_url(f"{url}/addPassword").post(AddPasswordPostRequestBody())
            await sp.remove_password.with_url(f"{url}/removePassword").post(
                RemovePasswordPostRequestBody(key_id=extra.key_id))
        return by_app_id, added, await sp.get()

    by_app_id, added, after = run(scenario())
    assert by_app_id.id == ids.ROGUE_SP_ID and str(by_app_id.app_id) == ids.ROGUE_APP_CLIENT_ID
    assert added.secret_text and added.key_id not in {c.key_id for c in after.password_credentials}
    assert [c.key_id for c in after.password_credentials] == [c.key_id for c in by_app_id.password_credentials]


# -- directory roles --------------------------------------------------------------------------------


@covers("graph", "GET /v1.0/directoryRoles", "GET /v1.0/directoryRoles/{id}", "GET /v1.0/directoryRoles/{id}/members",
        "GET /v1.0/directoryRoles(roleTemplateId='{roleTemplateId}')",
        "GET /v1.0/directoryRoles(roleTemplateId='{roleTemplateId}')/members")
def test_directory_roles_by_id_and_by_template_id(fresh_sandbox: Sandbox) -> None:
    async def scenario() -> tuple[Any, Any, Any, Any, Any]:
        client = customer_client(fresh_sandbox)
        roles = await client.directory_roles.get()
        admin_role = next(r for r in roles.value if r.role_template_id == GLOBAL_ADMIN_TEMPLATE_ID)
        by_id = await client.directory_roles.by_directory_role_id(admin_role.id).get()
        members = await client.directory_roles.by_directory_role_id(admin_role.id).members.get()
        by_template = await client.directory_roles_with_role_template_id(GLOBAL_ADMIN_TEMPLATE_ID).get()
        # The documented members-by-template-id form has no SDK builder (msgraph-sdk-python#1524).
        url = f"{fresh_sandbox.url('graph')}/v1.0/directoryRoles(roleTemplateId='{GLOBAL_ADMIN_TEMPLATE_ID}')/members"
        by_template_members = await client.directory_roles.by_directory_role_id(admin_role.id).members.with_url(
            url).get()
        return roles, by_id, members, by_template, by_template_members

    _, by_id, members, by_template, by_template_members = run(scenario())
    assert by_id.display_name == "Global Administrator" and by_template.id == by_id.id
    member_ids = {m.id for m in members.value}
    assert ids.FABRIKAM_GLOBAL_ADMIN_ID in member_ids
    assert {m.id for m in by_template_members.value} == member_ids
    assert all(m.odata_type == "#microsoft.graph.user" for m in members.value)


def test_directory_role_not_activated_is_an_odata_error(fresh_sandbox: Sandbox) -> None:
    from msgraph.generated.models.o_data_errors.o_data_error import ODataError

    async def scenario() -> None:
        await customer_client(fresh_sandbox).directory_roles_with_role_template_id(str(uuid.uuid4())).get()

    with pytest.raises(ODataError) as caught:
        run(scenario())
    assert caught.value.response_status_code == 404 and caught.value.error.code == "Request_ResourceNotFound"


# -- partner billing export (v1.0, app-only, partner tenant) -------------------------------------------


@covers("graph", "POST /v1.0/reports/partners/billing/usage/unbilled/export",
        "GET /v1.0/reports/partners/billing/operations/{id}", "GET /v1.0/reports/partners/billing/manifests/{id}",
        "GET /billingexports/v1/{path}", "HEAD /billingexports/v1/{path}")
def test_billing_export_operation_manifest_and_blob_with_microsofts_sdks(fresh_sandbox: Sandbox) -> None:
    """msgraph-sdk starts the export and follows it; azure-storage-blob reads a file with the SAS."""
    import gzip
    import json

    from azure.storage.blob import BlobClient
    from kiota_http.middleware.options import HeadersInspectionHandlerOption
    from msgraph.generated.models.partners.billing.attribute_set import AttributeSet
    from msgraph.generated.models.partners.billing.billing_period import BillingPeriod
    from msgraph.generated.models.partners.billing.export_success_operation import ExportSuccessOperation
    from msgraph.generated.models.partners.billing.running_operation import RunningOperation
    from msgraph.generated.reports.partners.billing.usage.unbilled.microsoft_graph_partners_billing_export.export_post_request_body import (  # noqa: E501
        ExportPostRequestBody,
    )

    async def scenario() -> tuple[list[Any], Any]:
        client = partner_app_client(fresh_sandbox, beta=False)
        billing = client.reports.partners.billing
        body = ExportPostRequestBody(currency_code="USD", billing_period=BillingPeriod.Last,
                                     attribute_set=AttributeSet.Full)
        headers = HeadersInspectionHandlerOption(inspect_response_headers=True)
        await billing.usage.unbilled.microsoft_graph_partners_billing_export.post(
            body, RequestConfiguration(options=[headers]))
        location = next(iter(headers.response_headers.get("location")))
        operation_id = location.rsplit("/", 1)[1]
        seen = [await billing.operations.by_operation_id(operation_id).get() for _ in range(2)]
        link = seen[-1].additional_data["resourceLocation@odata.navigationLink"]  # the docs' annotation
        manifest_id = str(link).rsplit("/", 1)[1]
        return seen, await billing.manifests.by_manifest_id(manifest_id).get()

    operations, manifest = run(scenario())
    assert isinstance(operations[0], RunningOperation) and isinstance(operations[1], ExportSuccessOperation)
    assert manifest.blob_count == len(manifest.blobs) >= 1 and manifest.data_format == "compressedJSON"
    assert manifest.partner_tenant_id == ids.PARTNER_TENANT_ID and manifest.sas_token and manifest.e_tag
    blob = BlobClient.from_blob_url(f"{manifest.root_directory}/{manifest.blobs[0].name}?{manifest.sas_token}",
                                    connection_verify=str(fresh_sandbox.ca_cert_path))
    lines = gzip.decompress(blob.download_blob().readall()).splitlines()
    item = json.loads(lines[0])
    assert {"CustomerId", "EntitlementId", "UsageDate", "MeterCategory", "ResourceLocation", "BillingPreTaxTotal",
            "Tier2MpnId", "SubscriptionId"} <= set(item)
    assert blob.get_blob_properties().size > 0
