"""Microsoft Graph client: partner security alerts, customer-directory remediation and mail.

One client talks to one tenant with one token: the partner tenant's app-only token for
``/beta/security/partner/securityAlerts`` (``PartnerSecurity.Read.All`` / ``ReadWrite.All``), a
customer-tenant delegated token (the SAM refresh token redeemed in that tenant) for users,
applications, service principals and directory roles, and a partner-tenant token with
``Mail.Send`` for notifications. Security alerts come back as the raw JSON dicts Graph sends
(normalising them is the intake's job); what the responder acts on is typed.

Every call goes through shared.http (one retry policy, typed errors) with Graph's
``client-request-id`` header. Client secrets returned by ``addPassword`` live only in
:attr:`PasswordCredential.secret_text`, which is left out of ``repr`` and comparisons.
"""

from __future__ import annotations

import datetime as dt
import ssl
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal
from urllib.parse import quote, urlsplit

from shared.formats import parse_time
from shared.http import (
    Forbidden,
    MalformedResponse,
    MicrosoftClient,
    NotFound,
    RetryPolicy,
    ServiceClient,
    verify_from_settings,
)
from shared.settings import Settings

SCOPE = "https://graph.microsoft.com/.default"
"""The scope Graph tokens are requested with (app-only and delegated alike)."""
SECURITY_ALERTS_PATH = "/beta/security/partner/securityAlerts"
GLOBAL_ADMIN_ROLE_TEMPLATE_ID = "62e90394-69f5-4237-9190-012177145e10"
MISSING_MFA_CODE = "Unauthorized_MissingMFA"
"""Graph's 403 code for a token without MFA claims; reported for app-only partner-alert calls
(microsoftgraph/msgraph-beta-sdk-dotnet issue 1083, January 2026), not documented."""

ALERT_STATUSES = ("active", "investigating", "resolved")
RESOLVED_REASONS = ("legitimate", "ignore", "fraud")
USER_PROPERTIES = (
    "id", "userPrincipalName", "displayName", "mail", "accountEnabled", "signInSessionsValidFromDateTime",
    "lastPasswordChangeDateTime", "passwordProfile",
)
MEMBER_PROPERTIES = ("id", "userPrincipalName", "displayName", "mail", "accountEnabled")

DirectoryKind = Literal["applications", "servicePrincipals"]


def _graph_time(moment: dt.datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("use a timezone-aware datetime (UTC)")
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def is_missing_mfa(exc: BaseException) -> bool:
    """True when Graph refused the call because the token has no MFA claims (app-only tokens never do)."""
    return isinstance(exc, Forbidden) and exc.code.lower() == MISSING_MFA_CODE.lower()


def _segment(value: str) -> str:
    if not value or not value.strip():
        raise ValueError("an id or user principal name is required")
    return quote(value.strip(), safe="@")


@dataclass(frozen=True)
class DirectoryUser:
    """A user in a customer's (or the partner's) directory, with the state the responder changes."""

    id: str
    user_principal_name: str
    display_name: str
    mail: str | None = None
    account_enabled: bool | None = None
    sign_in_sessions_valid_from: dt.datetime | None = None
    last_password_change: dt.datetime | None = None
    force_change_password_next_sign_in: bool | None = None
    force_change_password_next_sign_in_with_mfa: bool | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DirectoryUser:
        profile = data.get("passwordProfile") if isinstance(data.get("passwordProfile"), dict) else {}
        enabled = data.get("accountEnabled")
        return cls(
            id=str(data.get("id", "")),
            user_principal_name=str(data.get("userPrincipalName") or ""),
            display_name=str(data.get("displayName") or ""),
            mail=data.get("mail") if isinstance(data.get("mail"), str) else None,
            account_enabled=enabled if isinstance(enabled, bool) else None,
            sign_in_sessions_valid_from=parse_time(data.get("signInSessionsValidFromDateTime")),
            last_password_change=parse_time(data.get("lastPasswordChangeDateTime")),
            force_change_password_next_sign_in=_optional_bool(profile, "forceChangePasswordNextSignIn"),
            force_change_password_next_sign_in_with_mfa=_optional_bool(profile, "forceChangePasswordNextSignInWithMfa"),
        )


def _optional_bool(data: dict[str, Any] | Any, key: str) -> bool | None:
    value = data.get(key) if isinstance(data, dict) else None
    return value if isinstance(value, bool) else None


@dataclass(frozen=True)
class PasswordCredential:
    """A client secret of an application or service principal.

    ``secret_text`` is set only on the credential :meth:`GraphClient.add_application_password` /
    :meth:`GraphClient.add_service_principal_password` return (Graph shows it once); it never
    appears in ``repr`` and is not compared.
    """

    key_id: str
    hint: str | None = None
    display_name: str | None = None
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    secret_text: str | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PasswordCredential:
        secret = data.get("secretText")
        return cls(
            key_id=str(data.get("keyId", "")),
            hint=data.get("hint") if isinstance(data.get("hint"), str) else None,
            display_name=data.get("displayName") if isinstance(data.get("displayName"), str) else None,
            start=parse_time(data.get("startDateTime")),
            end=parse_time(data.get("endDateTime")),
            secret_text=secret if isinstance(secret, str) and secret else None,
        )


@dataclass(frozen=True)
class DirectoryApp:
    """An application or service principal and its password credentials (no secrets)."""

    kind: DirectoryKind
    id: str
    app_id: str
    display_name: str
    password_credentials: tuple[PasswordCredential, ...]


EMAIL_METHOD = "#microsoft.graph.emailAuthenticationMethod"
PHONE_METHOD = "#microsoft.graph.phoneAuthenticationMethod"
SECURITY_SCORE_PATH = "/beta/security/partner/securityScore"
DELEGATED_ADMIN_RELATIONSHIPS_PATH = "/v1.0/tenantRelationships/delegatedAdminRelationships"


@dataclass(frozen=True)
class RecoveryMethod:
    """A registered e-mail or phone authentication method (what self-service password reset sends codes to).

    ``created`` is the method's own ``createdDateTime`` (v1.0 ``authenticationMethod``); Graph
    often leaves it null for e-mail and phone methods, so callers also read the audit log.
    ``value`` is personal data: mask it anywhere but the partner's incident record.
    """

    kind: Literal["email", "phone"]
    id: str
    value: str
    phone_type: str | None = None
    created: dt.datetime | None = None

    @classmethod
    def from_json(cls, kind: Literal["email", "phone"], data: dict[str, Any]) -> RecoveryMethod:
        value = data.get("emailAddress") if kind == "email" else data.get("phoneNumber")
        phone_type = data.get("phoneType")
        return cls(kind=kind, id=str(data.get("id", "")), value=value if isinstance(value, str) else "",
                   phone_type=phone_type if isinstance(phone_type, str) and kind == "phone" else None,
                   created=parse_time(data.get("createdDateTime")))


MAX_SENDMAIL_ATTACHMENT_BYTES: Final = 3 * 1024 * 1024


@dataclass(frozen=True)
class MailAttachment:
    """A ``fileAttachment`` of a sendMail message; inline when it has a ``content_id``."""

    name: str
    content_type: str
    content: bytes
    content_id: str = ""

    def to_json(self) -> dict[str, Any]:
        import base64

        item: dict[str, Any] = {"@odata.type": "#microsoft.graph.fileAttachment", "name": self.name,
                                "contentType": self.content_type,
                                "contentBytes": base64.b64encode(self.content).decode("ascii")}
        if self.content_id:
            item.update({"contentId": self.content_id, "isInline": True})
        return item


class GraphClient(ServiceClient):
    """Calls ``{GRAPH_URL}`` in one tenant; ``token`` returns a Graph access token for that tenant."""

    def __init__(
        self,
        base_url: str,
        *,
        token: Callable[[], str],
        verify: ssl.SSLContext | bool = True,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        http: MicrosoftClient | None = None,
    ) -> None:
        self.http = http or MicrosoftClient(base_url, token=token, verify=verify, retry=retry, sleep=sleep,
                                            service="Microsoft Graph", correlation_header="client-request-id",
                                            request_id_header=None)
        self._origin = urlsplit(self.http.base_url)

    @classmethod
    def from_settings(cls, settings: Settings, *, token: Callable[[], str], retry: RetryPolicy | None = None,
                      sleep: Callable[[float], None] = time.sleep) -> GraphClient:
        return cls(settings.graph_url, token=token, verify=verify_from_settings(settings), retry=retry, sleep=sleep)

    # -- partner security alerts (beta, partner tenant, app-only) ------------------------------

    def security_alert_pages(
        self,
        *,
        filter: str | None = None,
        top: int | None = None,
        select: Sequence[str] | None = None,
        orderby: str | None = None,
    ) -> Iterator[list[dict[str, Any]]]:
        """Pages of raw partner security alerts, following ``@odata.nextLink`` to the end.

        ``filter`` is an OData expression (``status eq 'active' and customerTenantId eq '…'``);
        ``top`` is the page size asked for.
        """
        params: dict[str, str | int] = {}
        if filter:
            params["$filter"] = filter
        if top is not None:
            if not 1 <= top <= 999:
                raise ValueError("top must be from 1 to 999")
            params["$top"] = top
        if select:
            params["$select"] = ",".join(select)
        if orderby:
            params["$orderby"] = orderby
        for page in self._pages(SECURITY_ALERTS_PATH, params):
            yield [item for item in page if isinstance(item, dict)]

    def security_alerts(self, **options: Any) -> Iterator[dict[str, Any]]:
        """Every raw partner security alert (options as for :meth:`security_alert_pages`)."""
        for page in self.security_alert_pages(**options):
            yield from page

    def count_security_alerts(self, *, filter: str | None = None) -> int:
        """How many alerts match ``filter`` (``$count=true`` with ``$top=1``)."""
        params: dict[str, str | int] = {"$count": "true", "$top": 1}
        if filter:
            params["$filter"] = filter
        data = self._object("GET", SECURITY_ALERTS_PATH, params=params)
        count = data.get("@odata.count")
        if not isinstance(count, int):
            raise MalformedResponse("expected @odata.count in the response", status=200, service=self.http.service,
                                    method="GET", path=SECURITY_ALERTS_PATH)
        return count

    def get_security_alert(self, alert_id: str) -> dict[str, Any]:
        return self._object("GET", f"{SECURITY_ALERTS_PATH}/{_segment(alert_id)}")

    def update_security_alert(self, alert_id: str, *, status: str,
                              resolved_reason: str | None = None) -> dict[str, Any]:
        """PATCH status (and resolvedReason: legitimate, ignore or fraud); returns the updated alert."""
        if status not in ALERT_STATUSES:
            raise ValueError(f"status must be one of {', '.join(ALERT_STATUSES)}, not {status!r}")
        body: dict[str, Any] = {"status": status}
        if resolved_reason is not None:
            if resolved_reason not in RESOLVED_REASONS:
                raise ValueError(f"resolved_reason must be one of {', '.join(RESOLVED_REASONS)}, not "
                                 f"{resolved_reason!r}")
            body["resolvedReason"] = resolved_reason
        return self._object("PATCH", f"{SECURITY_ALERTS_PATH}/{_segment(alert_id)}", json=body)

    # -- users (customer tenant) -----------------------------------------------------------------

    def get_user(self, user: str) -> DirectoryUser:
        """A user by object id or UPN, with account, session and password-profile state."""
        data = self._object("GET", f"/v1.0/users/{_segment(user)}", params={"$select": ",".join(USER_PROPERTIES)})
        return DirectoryUser.from_json(data)

    def revoke_sign_in_sessions(self, user: str) -> bool:
        """Invalidate the user's refresh tokens and session cookies (takes effect within minutes)."""
        path = f"/v1.0/users/{_segment(user)}/revokeSignInSessions"
        response = self.http.request("POST", path, expected=(200, 204))
        if response.status_code == 204 or not response.content.strip():
            return True  # Graph's known issue: the status code may differ; no error means revoked
        data = self.http.parse_json(response, method="POST", path=path)
        return bool(data.get("value", True)) if isinstance(data, dict) else True

    def update_user(
        self,
        user: str,
        *,
        account_enabled: bool | None = None,
        force_change_password_next_sign_in: bool | None = None,
        force_change_password_next_sign_in_with_mfa: bool | None = None,
        password: str | None = None,
    ) -> None:
        """PATCH accountEnabled and/or passwordProfile; only the arguments given are sent."""
        body: dict[str, Any] = {}
        if account_enabled is not None:
            body["accountEnabled"] = account_enabled
        profile: dict[str, Any] = {}
        if force_change_password_next_sign_in is not None:
            profile["forceChangePasswordNextSignIn"] = force_change_password_next_sign_in
        if force_change_password_next_sign_in_with_mfa is not None:
            profile["forceChangePasswordNextSignInWithMfa"] = force_change_password_next_sign_in_with_mfa
        if password is not None:
            profile["password"] = password
        if profile:
            body["passwordProfile"] = profile
        if not body:
            raise ValueError("nothing to update: pass account_enabled or a password-profile argument")
        self.http.request("PATCH", f"/v1.0/users/{_segment(user)}", json=body, expected=(204, 200))

    def list_global_admins(self) -> list[DirectoryUser]:
        """Members of the Global Administrator role (empty when the role is not activated).

        Addressed by template id in the form Graph documents, ``directoryRoles(roleTemplateId='…')``
        (the object id differs per tenant).
        """
        path = f"/v1.0/directoryRoles(roleTemplateId='{GLOBAL_ADMIN_ROLE_TEMPLATE_ID}')/members"
        admins: list[DirectoryUser] = []
        try:
            for page in self._pages(path, {"$select": ",".join(MEMBER_PROPERTIES)}):
                admins.extend(DirectoryUser.from_json(item) for item in page
                              if isinstance(item, dict) and item.get("@odata.type", "#microsoft.graph.user")
                              == "#microsoft.graph.user")
        except NotFound:
            return []
        return admins

    # -- authentication methods and audit log (customer tenant) -------------------------------------

    def recovery_methods(self, user: str) -> list[RecoveryMethod]:
        """The user's registered e-mail and phone methods (``UserAuthenticationMethod.Read.All``).

        ``GET /users/{id}/authentication/emailMethods`` and ``.../phoneMethods``; a user may have one
        e-mail method and one phone of each type (mobile, alternateMobile, office).
        """
        methods: list[RecoveryMethod] = []
        base = f"/v1.0/users/{_segment(user)}/authentication"
        kinds: tuple[tuple[Literal["email", "phone"], str], ...] = (("email", "emailMethods"),
                                                                      ("phone", "phoneMethods"))
        for kind, segment in kinds:
            for page in self._pages(f"{base}/{segment}", {}):
                methods.extend(RecoveryMethod.from_json(kind, item) for item in page if isinstance(item, dict))
        return methods

    def directory_audits(self, *, filter: str | None = None, top: int | None = None) -> Iterator[dict[str, Any]]:
        """Raw Entra audit-log records (``GET /auditLogs/directoryAudits``; ``AuditLog.Read.All``)."""
        params: dict[str, str | int] = {}
        if filter:
            params["$filter"] = filter
        if top is not None:
            params["$top"] = top
        for page in self._pages("/v1.0/auditLogs/directoryAudits", params):
            yield from (item for item in page if isinstance(item, dict))

    # -- partner posture (partner tenant) ---------------------------------------------------------

    def partner_security_score(self) -> dict[str, Any]:
        """The partner security score (beta ``security/partner/securityScore``; ``PartnerSecurity.Read.All``)."""
        return self._object("GET", SECURITY_SCORE_PATH)

    def partner_security_requirements(self) -> list[dict[str, Any]]:
        """Microsoft's partner security requirements with their compliance (raw, ``@odata.type`` per kind)."""
        return [item for page in self._pages(f"{SECURITY_SCORE_PATH}/requirements", {}) for item in page
                if isinstance(item, dict)]

    def delegated_admin_relationships(self) -> list[dict[str, Any]]:
        """The partner's GDAP relationships, raw (``DelegatedAdminRelationship.Read.All``)."""
        return [item for page in self._pages(DELEGATED_ADMIN_RELATIONSHIPS_PATH, {}) for item in page
                if isinstance(item, dict)]

    # -- applications and service principals (customer tenant) ------------------------------------

    def get_application(self, object_id: str | None = None, *, app_id: str | None = None) -> DirectoryApp:
        return self._get_app("applications", object_id, app_id)

    def get_service_principal(self, object_id: str | None = None, *, app_id: str | None = None) -> DirectoryApp:
        return self._get_app("servicePrincipals", object_id, app_id)

    def add_application_password(self, object_id: str, *, display_name: str,
                                 end: dt.datetime | None = None) -> PasswordCredential:
        """A new client secret (returned with ``secret_text``, shown by Graph only this once)."""
        return self._add_password("applications", object_id, display_name, end)

    def remove_application_password(self, object_id: str, key_id: str) -> None:
        self._remove_password("applications", object_id, key_id)

    def add_service_principal_password(self, object_id: str, *, display_name: str,
                                       end: dt.datetime | None = None) -> PasswordCredential:
        return self._add_password("servicePrincipals", object_id, display_name, end)

    def remove_service_principal_password(self, object_id: str, key_id: str) -> None:
        self._remove_password("servicePrincipals", object_id, key_id)

    def _object_path(self, kind: DirectoryKind, object_id: str | None, app_id: str | None) -> str:
        if (object_id is None) == (app_id is None):
            raise ValueError("pass exactly one of object_id or app_id")
        if object_id is not None:
            return f"/v1.0/{kind}/{_segment(object_id)}"
        assert app_id is not None
        if "'" in app_id:
            raise ValueError("app_id must not contain quotes")
        return f"/v1.0/{kind}(appId='{_segment(app_id)}')"

    def _get_app(self, kind: DirectoryKind, object_id: str | None, app_id: str | None) -> DirectoryApp:
        data = self._object("GET", self._object_path(kind, object_id, app_id))
        credentials = data.get("passwordCredentials") or []
        return DirectoryApp(
            kind=kind, id=str(data.get("id", "")), app_id=str(data.get("appId", "")),
            display_name=str(data.get("displayName") or ""),
            password_credentials=tuple(PasswordCredential.from_json(c) for c in credentials if isinstance(c, dict)),
        )

    def _add_password(self, kind: DirectoryKind, object_id: str, display_name: str,
                      end: dt.datetime | None) -> PasswordCredential:
        credential: dict[str, Any] = {"displayName": display_name}
        if end is not None:
            credential["endDateTime"] = _graph_time(end)
        path = f"{self._object_path(kind, object_id, None)}/addPassword"
        data = self._object("POST", path, json={"passwordCredential": credential})
        result = PasswordCredential.from_json(data)
        if not result.key_id or result.secret_text is None:
            raise MalformedResponse("addPassword answered without keyId or secretText", status=200,
                                    service=self.http.service, method="POST", path=path)
        return result

    def _remove_password(self, kind: DirectoryKind, object_id: str, key_id: str) -> None:
        path = f"{self._object_path(kind, object_id, None)}/removePassword"
        self.http.request("POST", path, json={"keyId": key_id}, expected=(204, 200))

    # -- mail (partner tenant) ------------------------------------------------------------------

    def send_mail(
        self,
        sender: str,
        *,
        to: Sequence[str],
        subject: str,
        body: str,
        content_type: Literal["Text", "HTML"] = "Text",
        cc: Sequence[str] = (),
        save_to_sent_items: bool = False,
        attachments: Sequence[MailAttachment] = (),
    ) -> None:
        """Send a message from ``sender``'s mailbox; 202 means accepted, not delivered.

        ``attachments`` with a ``content_id`` are inline: an HTML body shows them with ``cid:<id>``.
        Graph takes at most 3 MB of attachments in one sendMail request.

        :raises ValueError: no recipient, or attachments over 3 MB.
        :raises shared.http.MicrosoftApiError: Graph refused (403: grant ``Mail.Send``).
        """
        if not to:
            raise ValueError("at least one recipient is required")
        if sum(len(a.content) for a in attachments) > MAX_SENDMAIL_ATTACHMENT_BYTES:
            raise ValueError("sendMail takes at most 3 MB of attachments; send fewer or smaller ones")
        message: dict[str, Any] = {
            "subject": subject,
            "body": {"contentType": content_type, "content": body},
            "toRecipients": [{"emailAddress": {"address": address}} for address in to],
        }
        if cc:
            message["ccRecipients"] = [{"emailAddress": {"address": address}} for address in cc]
        if attachments:
            message["attachments"] = [a.to_json() for a in attachments]
        self.http.request("POST", f"/v1.0/users/{_segment(sender)}/sendMail",
                          json={"message": message, "saveToSentItems": save_to_sent_items}, expected=(202,))

    # -- helpers ------------------------------------------------------------------------------------

    def _object(self, method: str, path: str, *, params: dict[str, str | int] | None = None,
                json: Any = None) -> dict[str, Any]:
        data = self.http.request_json(method, path, params=params, json=json)
        if not isinstance(data, dict):
            raise MalformedResponse("expected a JSON object", status=200, service=self.http.service, method=method,
                                    path=path)
        return data

    def _pages(self, path: str, params: dict[str, str | int]) -> Iterator[list[Any]]:
        """The ``value`` array of each page, following ``@odata.nextLink`` on this client's origin only."""
        next_path: str | None = path
        next_params: dict[str, str | int] | None = params
        while next_path is not None:
            data = self._object("GET", next_path, params=next_params)
            value = data.get("value")
            if not isinstance(value, list):
                raise MalformedResponse("expected a 'value' array", status=200, service=self.http.service,
                                        method="GET", path=path)
            yield value
            link = data.get("@odata.nextLink")
            next_path = self._same_origin(link, path) if link else None
            next_params = None

    def _same_origin(self, link: Any, path: str) -> str:
        """The nextLink, if it points at this client's host; the token is never sent anywhere else."""
        target = urlsplit(str(link))
        if (target.scheme, target.netloc) != (self._origin.scheme, self._origin.netloc):
            raise MalformedResponse(f"the nextLink points at another host ({target.netloc}); refusing to send the "
                                    "token there", status=200, service=self.http.service, method="GET", path=path)
        return str(link)
