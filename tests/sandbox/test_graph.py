"""The Graph stand-in through the app's GraphClient, with real tokens from the sandbox Entra (MSAL)."""

from __future__ import annotations

import datetime as dt
import ssl
from collections.abc import Iterator

import httpx
import pytest

from sandbox import ids
from sandbox.core import Sandbox
from sandbox.faults import Fault
from sandbox.graph import MINING_SECURITY_ALERT_ID, GraphService
from sandbox.testing import sandbox_settings
from shared.auth import ARM_RESOURCE, GRAPH_RESOURCE
from shared.auth.app_tokens import GraphAppTokenProvider
from shared.auth.partner_tokens import PartnerTokenProvider
from shared.clients.graph import GraphClient
from shared.http import BadRequest, Forbidden, NotFound, RetryPolicy
from shared.settings import Settings

MINING_ALERT = MINING_SECURITY_ALERT_ID
ALERT_COUNT = 5
OLD_APP_KEY = "eeeeeeee-1001-4000-8000-000000000001"
OLD_SP_KEY = "eeeeeeee-1002-4000-8000-000000000002"
FAST_RETRY = RetryPolicy(max_attempts=3, total_seconds=20, backoff_base=0.0)


@pytest.fixture
def settings(fresh_sandbox: Sandbox) -> Settings:
    return sandbox_settings(fresh_sandbox)


@pytest.fixture
def graph_state(fresh_sandbox: Sandbox) -> GraphService:
    service = fresh_sandbox.services["graph"]
    assert isinstance(service, GraphService)
    return service


@pytest.fixture
def partner_tokens(settings: Settings) -> PartnerTokenProvider:
    return PartnerTokenProvider(settings)


@pytest.fixture
def alerts(settings: Settings) -> Iterator[GraphClient]:
    """The partner tenant's app-only client (client credentials for GRAPH_APP_CLIENT_ID)."""
    provider = GraphAppTokenProvider(settings)
    with GraphClient.from_settings(settings, token=provider.token, retry=FAST_RETRY) as client:
        yield client


def customer_client(settings: Settings, tokens: PartnerTokenProvider, tenant: str) -> GraphClient:
    """A client for one tenant's directory: the SAM refresh token redeemed in that tenant."""
    return GraphClient.from_settings(settings, token=lambda: tokens.token(GRAPH_RESOURCE, tenant), retry=FAST_RETRY)


@pytest.fixture
def fabrikam(settings: Settings, partner_tokens: PartnerTokenProvider) -> Iterator[GraphClient]:
    with customer_client(settings, partner_tokens, ids.CUSTOMER_FABRIKAM) as client:
        yield client


def raw_client(sandbox: Sandbox, token: str) -> httpx.Client:
    return httpx.Client(base_url=sandbox.url("graph"), headers={"Authorization": f"Bearer {token}"},
                        verify=ssl.create_default_context(cafile=sandbox.ca_cert_path))


def assert_graph_error(body: dict[str, object], code: str) -> None:
    error = body["error"]
    assert isinstance(error, dict)
    assert error["code"] == code
    assert error["message"]
    inner = error["innerError"]
    assert isinstance(inner, dict)
    assert set(inner) == {"date", "request-id", "client-request-id"}


# -- partner security alerts -------------------------------------------------------------------


def test_filter_combines_status_customer_and_alert_type(alerts: GraphClient) -> None:
    found = list(alerts.security_alerts(filter=(
        f"status eq 'active' and customerTenantId eq '{ids.CUSTOMER_FABRIKAM}' "
        "and alertType eq 'networkConnectionsToCryptoMiningPools'")))
    assert [a["id"] for a in found] == [MINING_ALERT]
    alert = found[0]
    assert alert["isTest"] is False
    assert alert["severity"] == "high"
    assert alert["subscriptionId"] == ids.SUB_FABRIKAM_PROD
    assert alert["affectedResources"] == [
        {"resourceId": ids.MINING_VM_1, "resourceType": "Microsoft.Compute/virtualMachines"},
        {"resourceId": ids.MINING_VM_2, "resourceType": "Microsoft.Compute/virtualMachines"},
    ]
    test_alerts = list(alerts.security_alerts(filter="isTest eq true"))
    assert [a["alertType"] for a in test_alerts] == ["networkConnectionsToCryptoMiningPools"]
    assert test_alerts[0]["isTest"] is True


def test_pages_follow_next_link_until_every_alert_is_read(alerts: GraphClient, fresh_sandbox: Sandbox) -> None:
    pages = list(alerts.security_alert_pages(top=2))
    assert [len(page) for page in pages] == [2, 2, 1]
    ids_seen = [a["id"] for page in pages for a in page]
    assert len(set(ids_seen)) == ALERT_COUNT
    assert alerts.count_security_alerts() == ALERT_COUNT
    assert alerts.count_security_alerts(filter="status eq 'active'") == 3
    requests = [r for r in fresh_sandbox.requests("graph") if r.path.endswith("/securityAlerts")]
    assert sum("$skiptoken" in r.query for r in requests) == 2


def test_filter_supports_or_not_parentheses_and_timestamps(alerts: GraphClient) -> None:
    since = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=6)).strftime("%Y-%m-%dT%H:%M:%SZ")
    found = list(alerts.security_alerts(
        filter=f"(severity eq 'high' or severity eq 'medium') and not (status eq 'resolved') "
               f"and detectedDateTime ge {since}",
        orderby="detectedDateTime desc", select=["severity", "detectedDateTime"]))
    assert [a["id"] for a in found] == [MINING_ALERT, "ffffffff-0002-4000-8000-000000000002"]
    assert set(found[0]) == {"id", "severity", "detectedDateTime"}


def test_filter_on_unknown_property_is_a_bad_request(alerts: GraphClient) -> None:
    with pytest.raises(BadRequest) as caught:
        list(alerts.security_alerts(filter="colour eq 'red'"))
    assert "colour" in str(caught.value)


def test_patch_resolves_the_alert_and_records_who_and_when(alerts: GraphClient) -> None:
    updated = alerts.update_security_alert(MINING_ALERT, status="resolved", resolved_reason="fraud")
    assert updated["status"] == "resolved"
    assert updated["resolvedReason"] == "fraud"
    assert updated["resolvedBy"] == ids.GRAPH_APP_CLIENT_ID
    assert updated["resolvedOnDateTime"]
    assert updated["activityLogs"][-1]["statusFrom"] == "active"
    assert updated["activityLogs"][-1]["statusTo"] == "resolved"
    assert alerts.get_security_alert(MINING_ALERT) == updated
    resolved = [a["id"] for a in alerts.security_alerts(filter="status eq 'resolved'")]
    assert MINING_ALERT in resolved


def test_patch_with_an_unknown_reason_is_refused_before_sending(alerts: GraphClient) -> None:
    with pytest.raises(ValueError, match="resolved_reason"):
        alerts.update_security_alert(MINING_ALERT, status="resolved", resolved_reason="Fraud")


def test_alert_write_needs_the_readwrite_role(fresh_sandbox: Sandbox) -> None:
    token = fresh_sandbox.tokens.issue(tenant=ids.PARTNER_TENANT_ID, audience=GRAPH_RESOURCE,
                                       client_id=ids.GRAPH_APP_CLIENT_ID, roles=["PartnerSecurity.Read.All"])
    with raw_client(fresh_sandbox, token) as http:
        assert http.get(f"/beta/security/partner/securityAlerts/{MINING_ALERT}").status_code == 200
        response = http.patch(f"/beta/security/partner/securityAlerts/{MINING_ALERT}", json={"status": "resolved"})
    assert response.status_code == 403
    assert_graph_error(response.json(), "Forbidden")


def test_alerts_refuse_a_customer_tenant_token(settings: Settings, partner_tokens: PartnerTokenProvider) -> None:
    with customer_client(settings, partner_tokens, ids.CUSTOMER_FABRIKAM) as client, pytest.raises(Forbidden):
        list(client.security_alerts())


def test_a_transient_failure_is_retried(alerts: GraphClient, fresh_sandbox: Sandbox) -> None:
    fresh_sandbox.add_fault(Fault(service="graph", kind="status", status=503, retry_after=0, method="PATCH"))
    updated = alerts.update_security_alert(MINING_ALERT, status="investigating")
    assert updated["status"] == "investigating"
    patches = [r.status for r in fresh_sandbox.requests("graph") if r.method == "PATCH"]
    assert patches == [503, 200]


# -- customer directory -------------------------------------------------------------------------


def test_revoking_sessions_moves_the_sessions_valid_from_time(fabrikam: GraphClient,
                                                              graph_state: GraphService) -> None:
    assert fabrikam.get_user(ids.COMPROMISED_USER_ID).sign_in_sessions_valid_from is None
    assert fabrikam.revoke_sign_in_sessions(ids.COMPROMISED_USER_UPN) is True
    user = fabrikam.get_user(ids.COMPROMISED_USER_ID)
    assert user.sign_in_sessions_valid_from is not None
    assert graph_state.user(ids.CUSTOMER_FABRIKAM, ids.COMPROMISED_USER_ID)["_revocations"] == 1


def test_password_profile_and_sign_in_block_are_applied(fabrikam: GraphClient, graph_state: GraphService) -> None:
    fabrikam.update_user(ids.COMPROMISED_USER_ID, force_change_password_next_sign_in=True,
                         force_change_password_next_sign_in_with_mfa=True, account_enabled=False)
    user = fabrikam.get_user(ids.COMPROMISED_USER_UPN)
    assert user.force_change_password_next_sign_in is True
    assert user.force_change_password_next_sign_in_with_mfa is True
    assert user.account_enabled is False
    assert user.last_password_change is None

    fabrikam.update_user(ids.COMPROMISED_USER_ID, account_enabled=True, password="N3w-Sandbox-Passw0rd!")
    user = fabrikam.get_user(ids.COMPROMISED_USER_ID)
    assert user.account_enabled is True
    assert user.last_password_change is not None
    state = graph_state.user(ids.CUSTOMER_FABRIKAM, ids.COMPROMISED_USER_ID)
    assert "N3w-Sandbox-Passw0rd!" not in repr(state)


def test_a_weak_password_is_refused(fabrikam: GraphClient) -> None:
    with pytest.raises(BadRequest, match="complexity"):
        fabrikam.update_user(ids.COMPROMISED_USER_ID, password="short")


def test_rotating_an_application_secret(fabrikam: GraphClient) -> None:
    before = fabrikam.get_application(ids.ROGUE_APP_ID)
    assert [c.key_id for c in before.password_credentials] == [OLD_APP_KEY]

    new = fabrikam.add_application_password(ids.ROGUE_APP_ID, display_name="rotated by fraud responder")
    assert new.secret_text and len(new.secret_text) >= 40
    assert new.hint == new.secret_text[:3]
    assert new.secret_text not in repr(new)
    assert new.secret_text not in str(new)

    fabrikam.remove_application_password(ids.ROGUE_APP_ID, OLD_APP_KEY)
    after = fabrikam.get_application(app_id=ids.ROGUE_APP_CLIENT_ID)
    assert [c.key_id for c in after.password_credentials] == [new.key_id]
    assert all(c.secret_text is None for c in after.password_credentials)


def test_rotating_a_service_principal_secret(fabrikam: GraphClient) -> None:
    new = fabrikam.add_service_principal_password(ids.ROGUE_SP_ID, display_name="rotated")
    fabrikam.remove_service_principal_password(ids.ROGUE_SP_ID, OLD_SP_KEY)
    sp = fabrikam.get_service_principal(app_id=ids.ROGUE_APP_CLIENT_ID)
    assert sp.id == ids.ROGUE_SP_ID
    assert [c.key_id for c in sp.password_credentials] == [new.key_id]
    with pytest.raises(BadRequest, match=OLD_SP_KEY):
        fabrikam.remove_service_principal_password(ids.ROGUE_SP_ID, OLD_SP_KEY)


def test_global_admins_are_listed_per_customer(settings: Settings, partner_tokens: PartnerTokenProvider,
                                               fabrikam: GraphClient) -> None:
    admins = fabrikam.list_global_admins()
    assert {a.user_principal_name for a in admins} == {ids.FABRIKAM_GLOBAL_ADMIN_UPN, "ops@fabrikam.example"}
    assert all(a.account_enabled is True for a in admins)
    with customer_client(settings, partner_tokens, ids.CUSTOMER_NORTHWIND) as northwind:
        assert [a.user_principal_name for a in northwind.list_global_admins()] == ["admin@northwind.example",
                                                                             "it@northwind.example"]


def test_an_unknown_user_is_not_found(fabrikam: GraphClient) -> None:
    with pytest.raises(NotFound):
        fabrikam.get_user("nobody@fabrikam.example")


def test_a_token_from_another_tenant_is_refused_in_graph_shape(settings: Settings, fresh_sandbox: Sandbox,
                                                              partner_tokens: PartnerTokenProvider) -> None:
    with customer_client(settings, partner_tokens, ids.CUSTOMER_NORTHWIND) as northwind:
        with pytest.raises(Forbidden) as caught:
            northwind.revoke_sign_in_sessions(ids.COMPROMISED_USER_ID)
        assert caught.value.code == "Authorization_RequestDenied"
    token = partner_tokens.token(GRAPH_RESOURCE, ids.CUSTOMER_NORTHWIND)
    with raw_client(fresh_sandbox, token) as http:
        response = http.get(f"/v1.0/users/{ids.COMPROMISED_USER_ID}", headers={"client-request-id": "abc"})
    assert response.status_code == 403
    assert_graph_error(response.json(), "Authorization_RequestDenied")


def test_a_token_for_another_audience_gets_graph_401(fresh_sandbox: Sandbox,
                                                      partner_tokens: PartnerTokenProvider) -> None:
    token = partner_tokens.token(ARM_RESOURCE, ids.CUSTOMER_FABRIKAM)
    with raw_client(fresh_sandbox, token) as http:
        response = http.get(f"/v1.0/users/{ids.COMPROMISED_USER_ID}")
    assert response.status_code == 401
    assert_graph_error(response.json(), "InvalidAuthenticationToken")
    assert response.headers["WWW-Authenticate"].startswith("Bearer ")


# -- mail ------------------------------------------------------------------------------------------


def test_sent_mail_is_kept_and_listed(settings: Settings, partner_tokens: PartnerTokenProvider,
                                      fresh_sandbox: Sandbox, graph_state: GraphService) -> None:
    with customer_client(settings, partner_tokens, ids.PARTNER_TENANT_ID) as partner:
        partner.send_mail(ids.NOTIFY_SENDER, to=[ids.SECURITY_CONTACT], subject="Crypto-mining on Fabrikam",
                          body="<p>Two VMs were deallocated.</p>", content_type="HTML")
    kept = graph_state.sent_mail()
    assert len(kept) == 1
    assert kept[0]["from"] == ids.NOTIFY_SENDER
    assert kept[0]["to"] == [ids.SECURITY_CONTACT]
    assert kept[0]["subject"] == "Crypto-mining on Fabrikam"
    assert kept[0]["contentType"] == "HTML"
    with httpx.Client(verify=ssl.create_default_context(cafile=fresh_sandbox.ca_cert_path)) as http:
        listed = http.get(f"{fresh_sandbox.url('graph')}/_sandbox/graph/mail").json()["value"]
    assert [m["subject"] for m in listed] == ["Crypto-mining on Fabrikam"]


def test_mail_to_an_invalid_address_is_refused(settings: Settings, partner_tokens: PartnerTokenProvider,
                                               graph_state: GraphService) -> None:
    with customer_client(settings, partner_tokens, ids.PARTNER_TENANT_ID) as partner:
        with pytest.raises(BadRequest) as caught:
            partner.send_mail(ids.NOTIFY_SENDER, to=["not-an-address"], subject="x", body="y")
        assert caught.value.code == "ErrorInvalidRecipients"
        with pytest.raises(ValueError, match="recipient"):
            partner.send_mail(ids.NOTIFY_SENDER, to=[], subject="x", body="y")
    assert graph_state.sent_mail() == []


# -- MFA on partner security alerts (msgraph-beta-sdk-dotnet issue 1083) ---------------------------


def test_alerts_requiring_mfa_refuse_app_only_tokens_with_unauthorized_missing_mfa(
        settings: Settings, alerts: GraphClient, graph_state: GraphService, fresh_sandbox: Sandbox) -> None:
    graph_state.set_state(alerts_require_mfa=True)
    with pytest.raises(Forbidden) as refused:
        list(alerts.security_alerts())
    assert refused.value.code == "Unauthorized_MissingMFA"
    [answer] = [r for r in fresh_sandbox.requests("graph") if r.path.endswith("/securityAlerts")]
    assert answer.status == 403
    # The delegated SAM token (App+User, signed in with MFA) still reads them ...
    delegated = PartnerTokenProvider(settings)
    with GraphClient.from_settings(settings, token=lambda: delegated.token(GRAPH_RESOURCE)) as client:
        assert len(list(client.security_alerts())) == ALERT_COUNT
    # ... but not one without MFA in its amr claim.
    fresh_sandbox.services["entra"].set_state(mfa=False)  # type: ignore[attr-defined]
    without_mfa = PartnerTokenProvider(settings)
    with GraphClient.from_settings(settings, token=lambda: without_mfa.token(GRAPH_RESOURCE)) as client, \
            pytest.raises(Forbidden):
        list(client.security_alerts())


def test_the_alerts_mfa_switch_is_a_control_endpoint(fresh_sandbox: Sandbox, graph_state: GraphService) -> None:
    with httpx.Client(base_url=fresh_sandbox.url("graph"),
                      verify=ssl.create_default_context(cafile=fresh_sandbox.ca_cert_path)) as http:
        assert http.post("/_sandbox/graph/state", json={"alerts_require_mfa": True}).json() == {
            "alerts_require_mfa": True}
        assert graph_state.state() == {"alerts_require_mfa": True}
        assert http.post("/_sandbox/graph/state", json={"nope": 1}).status_code == 400
    fresh_sandbox.reset()
    assert graph_state.state() == {"alerts_require_mfa": False}
