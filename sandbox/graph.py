"""Microsoft Graph stand-in: partner security alerts (beta), customer directories and sendMail.

Three surfaces, each with the token the real Graph wants:

- ``/beta/security/partner/securityAlerts``: an app-only (or delegated) token issued in the
  PARTNER tenant with ``PartnerSecurity.Read.All`` (reads) or ``PartnerSecurity.ReadWrite.All``
  (PATCH). ``$filter`` (eq/ne/gt/ge/lt/le, ``and``/``or``/``not``, parentheses), ``$top``,
  ``$skiptoken`` paging through ``@odata.nextLink``, ``$count``, ``$select`` and ``$orderby``.
- ``/v1.0/users``, ``/v1.0/applications``, ``/v1.0/servicePrincipals``, ``/v1.0/directoryRoles``:
  a customer's directory, reached with a token whose ``tid`` is that customer (the SAM refresh
  token redeemed in the customer's tenant).
- ``/v1.0/users/{id|upn}/sendMail``: a mailbox of the partner tenant; every accepted message is
  kept and listed at ``GET /_sandbox/graph/mail`` and by :meth:`GraphService.sent_mail`.

Also a Teams/Slack-style incoming-webhook sink (not Graph, no auth, like the real ones):
``POST /_sandbox/hooks/{name}`` keeps the JSON posted, listed at ``GET /_sandbox/hooks`` and by
:meth:`GraphService.hook_posts`.

Run-time switch ``alerts_require_mfa`` (scenario key ``"alertsRequireMfa"``; ``POST
/_sandbox/graph/state`` or :meth:`GraphService.set_state`): the security-alert routes then refuse
any token without ``mfa`` in its ``amr`` claim, so every app-only token, with 403 and the body
reported for app-only calls (microsoftgraph/msgraph-beta-sdk-dotnet issue 1083, January 2026:
``{"Error": {"Code": "Unauthorized_MissingMFA", ...}}``, PascalCase as reported; undocumented).
A delegated SAM token signed in with MFA still reads them.

Departure from the real service (documented in sandbox/README.md): an object that exists only in
another tenant's directory answers 403 ``Authorization_RequestDenied`` naming both tenants, where
the real Graph answers 404 (it only looks in the token's own directory). It makes "wrong tenant"
mistakes obvious in tests.

Scenario section ``"graph"``::

    {"pageSize": 100,
     "securityAlerts": [{...partnerSecurityAlert, camelCase...}],
     "directories": {"<tenant id>": {
         "users": [{"id", "userPrincipalName", "displayName", "mail", "accountEnabled",
                    "directoryRoles": ["<role template id>"]}],
         "applications": [{"id", "appId", "displayName", "passwordCredentials": [...]}],
         "servicePrincipals": [{"id", "appId", "displayName", "passwordCredentials": [...]}]}}}
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import re
import secrets
import string
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import urlencode

from sandbox import ids
from sandbox.billing import BillingExportRoutes
from sandbox.core import HttpError, Request, Response, Service, json_response, route
from sandbox.paging import offset_token, read_offset_token

GRAPH_AUDIENCE = "https://graph.microsoft.com"
GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
GLOBAL_ADMIN_TEMPLATE_ID = "62e90394-69f5-4237-9190-012177145e10"
MINING_SECURITY_ALERT_ID = "ffffffff-0001-4000-8000-000000000001"
"""The default scenario's Graph alert matching Partner Center's MINING_ALERT_EVENT_ID."""

ALERT_READ_PERMISSIONS = ("PartnerSecurity.Read.All", "PartnerSecurity.ReadWrite.All")
ALERT_WRITE_PERMISSIONS = ("PartnerSecurity.ReadWrite.All",)

ALERT_TYPE_NAME = "microsoft.graph.partner.security.partnerSecurityAlert"
ALERT_PROPERTIES = (
    "id", "displayName", "description", "alertType", "status", "severity", "confidenceLevel", "isTest",
    "customerTenantId", "subscriptionId", "valueAddedResellerTenantId", "catalogOfferId",
    "detectedDateTime", "firstObservedDateTime", "lastObservedDateTime", "resolvedReason",
    "resolvedOnDateTime", "resolvedBy", "affectedResources", "activityLogs", "additionalDetails",
)
ALERT_DATETIME_PROPERTIES = frozenset(
    {"detectedDateTime", "firstObservedDateTime", "lastObservedDateTime", "resolvedOnDateTime"}
)
ALERT_ENUMS: dict[str, tuple[str, ...]] = {
    "status": ("active", "resolved", "investigating", "unknownFutureValue"),
    "severity": ("informational", "high", "medium", "low", "unknownFutureValue"),
    "confidenceLevel": ("low", "medium", "high", "unknownFutureValue"),
    "resolvedReason": ("legitimate", "ignore", "fraud", "unknownFutureValue"),
}
MAX_TOP = 999

# Least-privileged permissions (delegated scp or application roles) per directory operation, plus
# the broader ones Graph also accepts.
_DIRECTORY_WIDE = ("Directory.ReadWrite.All", "Directory.AccessAsUser.All")
USER_READ_PERMISSIONS = ("User.Read.All", "User.ReadBasic.All", "User.ReadWrite.All", "Directory.Read.All",
                         *_DIRECTORY_WIDE)
USER_REVOKE_PERMISSIONS = ("User.RevokeSessions.All", "User.ReadWrite.All", *_DIRECTORY_WIDE)
USER_WRITE_PERMISSIONS = ("User-PasswordProfile.ReadWrite.All", "User.EnableDisableAccount.All",
                          "User.ReadWrite.All", *_DIRECTORY_WIDE)
APP_READ_PERMISSIONS = ("Application.Read.All", "Application.ReadWrite.All", "Application.ReadWrite.OwnedBy",
                        "Directory.Read.All", *_DIRECTORY_WIDE)
APP_WRITE_PERMISSIONS = ("Application.ReadWrite.All", "Application.ReadWrite.OwnedBy", *_DIRECTORY_WIDE)
ROLE_READ_PERMISSIONS = ("RoleManagement.Read.Directory", "RoleManagement.ReadWrite.Directory", "Directory.Read.All",
                         *_DIRECTORY_WIDE)
MAIL_SEND_PERMISSIONS = ("Mail.Send",)
AUTH_METHOD_READ_PERMISSIONS = ("UserAuthenticationMethod.Read.All", "UserAuthenticationMethod.ReadWrite.All")
AUDIT_READ_PERMISSIONS = ("AuditLog.Read.All",)
GDAP_READ_PERMISSIONS = ("DelegatedAdminRelationship.Read.All", "DelegatedAdminRelationship.ReadWrite.All")
SCORE_READ_PERMISSIONS = ("PartnerSecurity.Read.All",)
EMAIL_METHOD_ID = "3ddfcfc8-9383-446f-83cc-3ab9be4be18f"
"""Graph's fixed id of a user's (only) e-mail authentication method."""
PHONE_METHOD_IDS = {"mobile": "3179e48a-750b-4051-897c-87b9720928f7",
                    "alternateMobile": "b6332ec1-7057-4abe-9331-3d72feddfe41",
                    "office": "e37fc753-ff3b-4958-9484-eaa9425c82bc"}
"""Graph's fixed phone-method id per phoneType."""
AUDIT_PROPERTIES = ("id", "category", "correlationId", "result", "resultReason", "activityDisplayName",
                    "activityDateTime", "loggedByService", "operationType", "initiatedBy", "targetResources",
                    "additionalDetails")

# Role templates the directory stand-in knows (id -> display name).
ROLE_TEMPLATES = {
    GLOBAL_ADMIN_TEMPLATE_ID: "Global Administrator",
    "9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3": "Application Administrator",
    "fe930be7-5e62-47db-91af-98c3a49a38b1": "User Administrator",
}

USER_DEFAULT_PROPERTIES = (
    "businessPhones", "displayName", "givenName", "jobTitle", "mail", "mobilePhone", "officeLocation",
    "preferredLanguage", "surname", "userPrincipalName", "id",
)
USER_SELECTABLE = frozenset(USER_DEFAULT_PROPERTIES) | {
    "accountEnabled", "passwordProfile", "signInSessionsValidFromDateTime", "lastPasswordChangeDateTime",
    "userType", "createdDateTime",
}
_SECRET_ALPHABET = string.ascii_letters + string.digits + "~.-_"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond:06d}Z"


def parse_datetime(text: str) -> dt.datetime:
    """An ISO 8601 timestamp (``Z`` or offset, up to 7 fraction digits) as aware UTC."""
    value = text.strip()
    match = re.fullmatch(r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2})?)(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})?", value)
    if not match:
        raise ValueError(f"not an ISO 8601 timestamp: {text!r}")
    base, fraction, zone = match.groups()
    moment = dt.datetime.fromisoformat(base + (f".{fraction[:6]}" if fraction else "") + (
        "+00:00" if zone in (None, "Z") else zone))
    return moment.astimezone(dt.UTC)


class _MissingMfa(HttpError):
    """Graph's refusal of a token without MFA claims on partner security alerts."""

    def __init__(self) -> None:
        super().__init__(403, "Unauthorized_MissingMFA", "MFA is required for this request. The provided "
                         "authentication token does not have MFA claims.")


# ---------------------------------------------------------------------------------------------
# OData $filter: a small recursive-descent parser producing a predicate over one JSON object.

_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^']|'')*')"
    r"|(?P<dt>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2})?)"
    r"|(?P<num>-?\d+(?:\.\d+)?)"
    r"|(?P<lp>\()|(?P<rp>\))|(?P<comma>,)"
    r"|(?P<word>[A-Za-z_][A-Za-z0-9_./]*))"
)
_COMPARISONS = ("eq", "ne", "gt", "ge", "lt", "le")
_FUNCTIONS = ("startswith", "endswith", "contains")


class FilterError(ValueError):
    """A ``$filter`` the stand-in cannot parse or that names an unknown property."""


Predicate = Callable[[dict[str, Any]], bool]


@dataclass(frozen=True)
class _Tok:
    kind: str
    text: str


@dataclass(frozen=True)
class _Literal:
    value: Any


@dataclass(frozen=True)
class _Property:
    name: str


def _tokenize(text: str) -> list[_Tok]:
    tokens: list[_Tok] = []
    position = 0
    while position < len(text):
        if text[position:].strip() == "":
            break
        match = _TOKEN.match(text, position)
        if not match or match.end() == position:
            raise FilterError(f"Syntax error at position {position} in '{text}'.")
        kind = match.lastgroup or ""
        tokens.append(_Tok(kind, match.group(kind)))
        position = match.end()
    return tokens


class ODataFilter:
    """Parse ``$filter`` once; ``properties`` maps lower-case names to the real property names."""

    def __init__(self, text: str, *, properties: Iterable[str], type_name: str,
                 datetime_properties: Iterable[str] = ()) -> None:
        self._text = text
        self._tokens = _tokenize(text)
        self._pos = 0
        self._properties = {name.lower(): name for name in properties}
        self._datetimes = frozenset(datetime_properties)
        self._type_name = type_name
        if not self._tokens:
            raise FilterError("The $filter query option is empty.")
        self.predicate = self._or()
        if self._pos != len(self._tokens):
            raise FilterError(f"Syntax error: unexpected '{self._tokens[self._pos].text}' in '{text}'.")

    # -- grammar ----------------------------------------------------------------------------

    def _peek(self) -> _Tok | None:
        return self._tokens[self._pos] if self._pos < len(self._tokens) else None

    def _take(self, kind: str | None = None, word: str | None = None) -> _Tok:
        token = self._peek()
        if token is None:
            raise FilterError(f"Syntax error: '{self._text}' ends too early.")
        if (kind and token.kind != kind) or (word and token.text.lower() != word):
            raise FilterError(f"Syntax error: unexpected '{token.text}' in '{self._text}'.")
        self._pos += 1
        return token

    def _is_word(self, *words: str) -> bool:
        token = self._peek()
        return token is not None and token.kind == "word" and token.text.lower() in words

    def _or(self) -> Predicate:
        left = self._and()
        while self._is_word("or"):
            self._take()
            right = self._and()
            left = _either(left, right)
        return left

    def _and(self) -> Predicate:
        left = self._unary()
        while self._is_word("and"):
            self._take()
            right = self._unary()
            left = _both(left, right)
        return left

    def _unary(self) -> Predicate:
        if self._is_word("not"):
            self._take()
            inner = self._unary()
            return lambda item: not inner(item)
        token = self._peek()
        if token is not None and token.kind == "lp":
            self._take()
            inner = self._or()
            self._take("rp")
            return inner
        if self._is_word(*_FUNCTIONS):
            return self._function()
        return self._comparison()

    def _function(self) -> Predicate:
        name = self._take().text.lower()
        self._take("lp")
        left = self._operand()
        self._take("comma")
        right = self._operand()
        self._take("rp")
        if not isinstance(left, _Property) or not isinstance(right, _Literal) or not isinstance(right.value, str):
            raise FilterError(f"{name} expects a property and a string literal.")
        needle = right.value.lower()
        prop = left.name

        def test(item: dict[str, Any]) -> bool:
            value = item.get(prop)
            if not isinstance(value, str):
                return False
            hay = value.lower()
            return {"startswith": hay.startswith, "endswith": hay.endswith,
                    "contains": hay.__contains__}[name](needle)

        return test

    def _comparison(self) -> Predicate:
        left = self._operand()
        token = self._peek()
        if token is None or token.kind != "word" or token.text.lower() not in _COMPARISONS:
            raise FilterError(f"Syntax error: expected a comparison (eq, ne, gt, ge, lt, le) in '{self._text}'.")
        operator = self._take().text.lower()
        right = self._operand()
        if isinstance(left, _Literal) and isinstance(right, _Property):
            left, right = right, left
            operator = {"gt": "lt", "lt": "gt", "ge": "le", "le": "ge"}.get(operator, operator)
        if not isinstance(left, _Property) or not isinstance(right, _Literal):
            raise FilterError("A comparison needs one property and one literal.")
        prop, literal = left.name, right.value
        if prop in self._datetimes and isinstance(literal, str):
            try:
                literal = parse_datetime(literal)
            except ValueError as exc:
                raise FilterError(str(exc)) from None
        return _compare(prop, operator, literal, is_datetime=prop in self._datetimes)

    def _operand(self) -> _Literal | _Property:
        token = self._take()
        if token.kind == "str":
            return _Literal(token.text[1:-1].replace("''", "'"))
        if token.kind == "dt":
            return _Literal(token.text)
        if token.kind == "num":
            return _Literal(float(token.text) if "." in token.text else int(token.text))
        if token.kind == "word":
            lowered = token.text.lower()
            if lowered in ("true", "false"):
                return _Literal(lowered == "true")
            if lowered == "null":
                return _Literal(None)
            name = self._properties.get(lowered)
            if name is None:
                raise FilterError(f"Could not find a property named '{token.text}' on type '{self._type_name}'.")
            return _Property(name)
        raise FilterError(f"Syntax error: unexpected '{token.text}' in '{self._text}'.")


def _either(a: Predicate, b: Predicate) -> Predicate:
    return lambda item: a(item) or b(item)


def _both(a: Predicate, b: Predicate) -> Predicate:
    return lambda item: a(item) and b(item)


def _compare(prop: str, operator: str, literal: Any, *, is_datetime: bool) -> Predicate:
    def test(item: dict[str, Any]) -> bool:
        value: Any = item.get(prop)
        if is_datetime and isinstance(value, str):
            try:
                value = parse_datetime(value)
            except ValueError:
                return False
        left: Any = value
        right: Any = literal
        if isinstance(value, str) and isinstance(literal, str):
            left, right = value.lower(), literal.lower()
        if operator == "eq":
            return bool(left == right)
        if operator == "ne":
            return bool(left != right)
        if left is None or right is None:
            return False
        try:
            return bool({"gt": left > right, "ge": left >= right, "lt": left < right, "le": left <= right}[operator])
        except TypeError:
            return False

    return test


# ---------------------------------------------------------------------------------------------
# Directory objects


def _credential_view(credential: dict[str, Any]) -> dict[str, Any]:
    """A password credential as GET returns it: the secret is never readable again."""
    view = {key: credential.get(key) for key in
            ("customKeyIdentifier", "displayName", "endDateTime", "hint", "keyId", "startDateTime")}
    view["secretText"] = None
    return view


def _without_annotations(body: Any, type_name: str) -> dict[str, Any]:
    """A PATCH body without its OData instance annotations (``@odata.type`` and the like).

    OData lets a client annotate any object it sends; msgraph-sdk always sends ``@odata.type``.
    Graph ignores annotations but refuses a type that is not the entity's own.
    """
    if not isinstance(body, dict):
        raise HttpError(400, "Request_BadRequest", "The request body must be a JSON object.")
    declared = body.get("@odata.type")
    if declared is not None and str(declared).lstrip("#").lower() != type_name.lstrip("#").lower():
        raise HttpError(400, "Request_BadRequest", f"A type named '{declared}' could not be resolved by the model; "
                        f"expected '{type_name}'.")
    return {key: value for key, value in body.items() if not key.startswith("@") and "@odata." not in key}


def _action_parameters(body: Any, names: Iterable[str]) -> dict[str, Any]:
    """An OData action's parameters keyed by their documented names, matched case-insensitively.

    The docs' examples use camelCase (``message``); msgraph-sdk sends the names of Graph's
    metadata (``Message``, ``SaveToSentItems``). Graph accepts both; unknown parameters are refused.
    """
    if not isinstance(body, dict):
        raise HttpError(400, "Request_BadRequest", "The request body must be a JSON object.")
    known = {name.lower(): name for name in names}
    found: dict[str, Any] = {}
    for key, value in body.items():
        if key.startswith("@"):
            continue
        name = known.get(key.lower())
        if name is None:
            raise HttpError(400, "Request_BadRequest", f"The parameter '{key}' in the request payload is not a valid "
                            f"parameter for the operation; expected {', '.join(known.values())}.")
        if name in found:
            raise HttpError(400, "Request_BadRequest", f"The parameter '{name}' is given more than once.")
        found[name] = value
    return found


MAX_ATTACHMENT_BYTES = 3 * 1024 * 1024
"""Graph's limit for attachments sent inside one sendMail request (larger ones need an upload session)."""


def _file_attachments(raw: Any) -> list[dict[str, Any]]:
    """sendMail ``message.attachments``: fileAttachments with name and base64 contentBytes, decoded."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise HttpError(400, "ErrorInvalidRequest", "message.attachments must be an array.")
    kept, total = [], 0
    for item in raw:
        if not isinstance(item, dict) or item.get("@odata.type") != "#microsoft.graph.fileAttachment":
            raise HttpError(400, "ErrorInvalidRequest", "Each attachment must be a #microsoft.graph.fileAttachment.")
        name, content = item.get("name"), item.get("contentBytes")
        if not isinstance(name, str) or not name or not isinstance(content, str):
            raise HttpError(400, "ErrorInvalidRequest", "A fileAttachment needs a name and base64 contentBytes.")
        try:
            data = base64.b64decode(content, validate=True)
        except ValueError:
            raise HttpError(400, "ErrorInvalidRequest", f"The contentBytes of {name!r} are not base64.") from None
        total += len(data)
        if total > MAX_ATTACHMENT_BYTES:
            raise HttpError(413, "ErrorRequestEntityTooLarge", "The attachments exceed 3 MB; use an upload session.")
        kept.append({"name": name, "contentType": item.get("contentType", ""), "contentId": item.get("contentId", ""),
                     "isInline": bool(item.get("isInline", False)), "contentBytes": content,
                     "size": len(data)})
    return kept


def _new_secret() -> str:
    """A client secret shaped like Entra's (40 characters, ``~`` in the fourth place)."""
    body = "".join(secrets.choice(_SECRET_ALPHABET) for _ in range(37))
    return body[:3] + "8Q~" + body[3:37]


class GraphService(BillingExportRoutes, Service):
    """Graph: partner security alerts, customer directories and mail, on one loopback port."""

    name: ClassVar[str] = "graph"
    audiences: ClassVar[tuple[str, ...]] = (GRAPH_AUDIENCE, GRAPH_APP_ID, GRAPH_AUDIENCE + "/")

    page_size: int
    alerts_require_mfa: bool
    _alerts: dict[str, dict[str, Any]]
    _users: dict[str, dict[str, dict[str, Any]]]
    _apps: dict[str, dict[str, dict[str, Any]]]
    _sps: dict[str, dict[str, dict[str, Any]]]
    _mail: list[dict[str, Any]]
    _hooks: list[dict[str, Any]]
    _methods: dict[str, dict[str, dict[str, list[dict[str, Any]]]]]
    _audits: dict[str, list[dict[str, Any]]]
    _score: dict[str, Any] | None
    _requirements: list[dict[str, Any]]
    _gdap: list[dict[str, Any]]

    # -- state ------------------------------------------------------------------------------

    def reset(self) -> None:
        """Back to the scenario's alerts and directories; kept mail is dropped."""
        section = copy.deepcopy(self.section)
        with self.lock:
            self.page_size = int(section.get("pageSize", 100))
            self.alerts_require_mfa = bool(section.get("alertsRequireMfa", False))
            self.reset_billing()
            self._alerts = {}
            for raw in section.get("securityAlerts", []):
                alert = {name: raw.get(name) for name in ALERT_PROPERTIES}
                alert["isTest"] = bool(raw.get("isTest", False))
                alert["affectedResources"] = list(raw.get("affectedResources") or [])
                alert["activityLogs"] = list(raw.get("activityLogs") or [])
                alert["additionalDetails"] = dict(raw.get("additionalDetails") or {})
                alert["id"] = str(raw["id"])
                self._alerts[alert["id"].lower()] = alert
            self._users, self._apps, self._sps = {}, {}, {}
            for tenant, directory in section.get("directories", {}).items():
                tid = tenant.lower()
                self._users[tid] = {}
                for user in directory.get("users", []):
                    record = {
                        "id": user["id"], "userPrincipalName": user["userPrincipalName"],
                        "displayName": user.get("displayName", user["userPrincipalName"]),
                        "givenName": user.get("givenName"), "surname": user.get("surname"),
                        "mail": user.get("mail", user["userPrincipalName"]),
                        "accountEnabled": bool(user.get("accountEnabled", True)),
                        "userType": user.get("userType", "Member"),
                        "createdDateTime": user.get("createdDateTime"),
                        "signInSessionsValidFromDateTime": user.get("signInSessionsValidFromDateTime"),
                        "lastPasswordChangeDateTime": user.get("lastPasswordChangeDateTime"),
                        "passwordProfile": {"password": None, "forceChangePasswordNextSignIn": False,
                                            "forceChangePasswordNextSignInWithMfa": False},
                        "directoryRoles": [r.lower() for r in user.get("directoryRoles", [])],
                        "_revocations": 0, "_passwordChanges": 0,
                    }
                    self._users[tid][record["id"].lower()] = record
                self._apps[tid] = {a["id"].lower(): self._app_record(a) for a in directory.get("applications", [])}
                self._sps[tid] = {s["id"].lower(): self._app_record(s) for s in directory.get("servicePrincipals", [])}
            self._mail = []
            self._hooks = []
            self._load_posture_and_methods(section)

    @staticmethod
    def _app_record(raw: dict[str, Any]) -> dict[str, Any]:
        credentials = []
        for cred in raw.get("passwordCredentials", []):
            credentials.append({
                "customKeyIdentifier": None, "displayName": cred.get("displayName"),
                "endDateTime": cred.get("endDateTime"), "hint": cred.get("hint"), "keyId": cred["keyId"],
                "startDateTime": cred.get("startDateTime"),
            })
        return {"id": raw["id"], "appId": raw["appId"], "displayName": raw.get("displayName"),
                "passwordCredentials": credentials}

    # -- Python API for tests and the dev stack -----------------------------------------------

    def set_state(self, **changes: Any) -> None:
        """Change run-time switches: ``alerts_require_mfa``."""
        unknown = set(changes) - {"alerts_require_mfa"}
        if unknown:
            raise HttpError(400, "BadRequest", f"unknown switch {sorted(unknown)[0]!r}; known: alerts_require_mfa")
        with self.lock:
            if "alerts_require_mfa" in changes:
                self.alerts_require_mfa = bool(changes["alerts_require_mfa"])

    def state(self) -> dict[str, Any]:
        with self.lock:
            return {"alerts_require_mfa": self.alerts_require_mfa}

    def set_posture(self, *, requirements: list[dict[str, Any]] | None = None,
                    relationships: list[dict[str, Any]] | None = None) -> None:
        """Replace the partner security score's requirements and/or the GDAP relationships (tests)."""
        with self.lock:
            if requirements is not None:
                self._requirements = copy.deepcopy(requirements)
            if relationships is not None:
                self._gdap = copy.deepcopy(relationships)

    def posture(self) -> dict[str, Any]:
        """The requirements and GDAP relationships as served (tests start from them)."""
        with self.lock:
            return {"requirements": copy.deepcopy(self._requirements), "relationships": copy.deepcopy(self._gdap)}

    def sent_mail(self) -> list[dict[str, Any]]:
        """Every message accepted by sendMail, oldest first."""
        with self.lock:
            return copy.deepcopy(self._mail)

    def hook_posts(self, name: str | None = None) -> list[dict[str, Any]]:
        """Every JSON document posted to the incoming-webhook sink (one hook or all), oldest first."""
        with self.lock:
            return [copy.deepcopy(p) for p in self._hooks if name is None or p["name"] == name]

    def alert(self, alert_id: str) -> dict[str, Any]:
        with self.lock:
            return copy.deepcopy(self._alerts[alert_id.lower()])

    def add_alert(self, alert: dict[str, Any]) -> None:
        """Add or replace a security alert (tests raise new alerts at run time)."""
        record = {name: alert.get(name) for name in ALERT_PROPERTIES}
        record["isTest"] = bool(alert.get("isTest", False))
        record["affectedResources"] = list(alert.get("affectedResources") or [])
        record["activityLogs"] = list(alert.get("activityLogs") or [])
        record["additionalDetails"] = dict(alert.get("additionalDetails") or {})
        with self.lock:
            self._alerts[str(alert["id"]).lower()] = record

    def user(self, tenant: str, user: str) -> dict[str, Any]:
        """A user's full sandbox state (including revocation and password-change counts)."""
        with self.lock:
            found = self._find_user(tenant.lower(), user)
            if found is None:
                raise KeyError(user)
            return copy.deepcopy(found)

    def credentials(self, tenant: str, kind: str, object_id: str) -> list[dict[str, Any]]:
        """Password credentials (without secrets) of an application or service principal."""
        store = self._apps if kind == "applications" else self._sps
        with self.lock:
            return copy.deepcopy(store[tenant.lower()][object_id.lower()]["passwordCredentials"])

    # -- shapes ---------------------------------------------------------------------------------

    def error(self, err: HttpError) -> Response:
        request_id = str(uuid.uuid4())
        if isinstance(err, _MissingMfa):  # the body as reported, not Graph's usual error shape
            return json_response(403, {"Error": {"Code": "Unauthorized_MissingMFA", "Message": err.message}},
                                 {"request-id": request_id, "client-request-id": request_id})
        body = {"error": {"code": err.code, "message": err.message, "innerError": {
            "date": _now().strftime("%Y-%m-%dT%H:%M:%S"), "request-id": request_id, "client-request-id": request_id,
        }}}
        headers = {"request-id": request_id, "client-request-id": request_id, **(err.headers or {})}
        return json_response(err.status, body, headers)

    def unauthorized(self, reason: str) -> Response:
        lowered = reason.lower()
        if "missing" in lowered or "no bearer" in lowered or "empty" in lowered:
            message = "Access token is empty."
        elif "expired" in lowered:
            message = "Lifetime validation failed, the token is expired."
        elif "audience" in lowered:
            message = "Access token validation failure. Invalid audience."
        else:
            message = f"Access token validation failure: {reason}."
        return self.error(HttpError(401, "InvalidAuthenticationToken", message, headers={
            "WWW-Authenticate": 'Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/'
                                f'oauth2/authorize", client_id="{GRAPH_APP_ID}"',
        }))

    def _ok(self, status: int, obj: Any, request: Request) -> Response:
        client_request_id = request.headers.get("client-request-id") or str(uuid.uuid4())
        return json_response(status, obj, {"request-id": str(uuid.uuid4()), "client-request-id": client_request_id})

    def _empty(self, status: int, request: Request) -> Response:
        client_request_id = request.headers.get("client-request-id") or str(uuid.uuid4())
        return Response(status, b"", {"request-id": str(uuid.uuid4()), "client-request-id": client_request_id})

    # -- auth helpers -------------------------------------------------------------------------

    @staticmethod
    def _permissions(claims: dict[str, Any]) -> set[str]:
        granted = {p.lower() for p in str(claims.get("scp", "")).split()}
        granted |= {str(r).lower() for r in claims.get("roles", []) or []}
        return granted

    def _require_permission(self, request: Request, wanted: Iterable[str],
                            code: str = "Authorization_RequestDenied") -> dict[str, Any]:
        claims = request.claims or {}
        wanted_list = list(wanted)
        if not self._permissions(claims) & {w.lower() for w in wanted_list}:
            raise HttpError(403, code, "Insufficient privileges to complete the operation. API requires one of "
                            f"'{', '.join(wanted_list)}'. Roles on the request '{', '.join(claims.get('roles', []))}'. "
                            f"Scopes on the request '{claims.get('scp', '')}'.")
        return claims

    def _partner_tenant(self) -> str:
        partner = self.sandbox.scenario.get("tenants", {}).get("partner", {})
        return str(partner.get("id") or ids.PARTNER_TENANT_ID).lower()

    def _require_partner(self, request: Request, wanted: Iterable[str]) -> dict[str, Any]:
        claims = self._require_permission(request, wanted, "Forbidden")
        tenant = str(claims.get("tid", "")).lower()
        if tenant != self._partner_tenant():
            raise HttpError(403, "Forbidden", f"Partner security alerts are readable only with a token issued in the "
                            f"partner tenant; this token is for tenant {tenant}.")
        with self.lock:
            require_mfa = self.alerts_require_mfa
        if require_mfa and "mfa" not in (claims.get("amr") or []):
            raise _MissingMfa()
        return claims

    def _tenant(self, request: Request) -> str:
        return str((request.claims or {}).get("tid", "")).lower()

    def _wrong_tenant(self, kind: str, key: str, owner: str, tenant: str) -> HttpError:
        return HttpError(403, "Authorization_RequestDenied",
                         f"Insufficient privileges to complete the operation. The {kind} '{key}' belongs to tenant "
                         f"{owner} but the access token was issued in tenant {tenant}: redeem the refresh token in "
                         f"the customer's tenant (sandbox departure: the real Graph answers 404).")

    # -- lookups ------------------------------------------------------------------------------

    def _find_user(self, tenant: str, key: str) -> dict[str, Any] | None:
        users = self._users.get(tenant, {})
        lowered = key.lower()
        if lowered in users:
            return users[lowered]
        for user in users.values():
            if user["userPrincipalName"].lower() == lowered:
                return user
        return None

    def _user(self, request: Request, key: str) -> dict[str, Any]:
        tenant = self._tenant(request)
        user = self._find_user(tenant, key)
        if user is not None:
            return user
        for other in self._users:
            if other != tenant and self._find_user(other, key) is not None:
                raise self._wrong_tenant("user", key, other, tenant)
        raise HttpError(404, "Request_ResourceNotFound",
                        f"Resource '{key}' does not exist or one of its queried reference-property objects are "
                        "not present.")

    def _directory_object(self, request: Request, kind: str, object_id: str | None,
                          app_id: str | None) -> dict[str, Any]:
        store = self._apps if kind == "applications" else self._sps
        tenant = self._tenant(request)

        def find(in_tenant: str) -> dict[str, Any] | None:
            for record in store.get(in_tenant, {}).values():
                if object_id is not None and record["id"].lower() == object_id.lower():
                    return record
                if app_id is not None and record["appId"].lower() == app_id.lower():
                    return record
            return None

        found = find(tenant)
        if found is not None:
            return found
        key = object_id or f"appId='{app_id}'"
        for other in store:
            if other != tenant and find(other) is not None:
                raise self._wrong_tenant(kind[:-1], key, other, tenant)
        raise HttpError(404, "Request_ResourceNotFound",
                        f"Resource '{key}' does not exist or one of its queried reference-property objects are "
                        "not present.")

    # -- partner security alerts -----------------------------------------------------------------

    @route("GET", r"/beta/security/partner/securityAlerts")
    def list_alerts(self, request: Request) -> Response:
        self._require_partner(request, ALERT_READ_PERMISSIONS)
        filter_text = request.arg("$filter")
        top_text = request.arg("$top")
        count_text = (request.arg("$count") or "false").lower()
        select = self._select(request.arg("$select"), ALERT_PROPERTIES, ALERT_TYPE_NAME)
        if count_text not in ("true", "false"):
            raise HttpError(400, "BadRequest", "Invalid value for $count: expected true or false.")
        top: int | None = None
        if top_text is not None:
            if not top_text.isdigit() or not 1 <= int(top_text) <= MAX_TOP:
                raise HttpError(400, "BadRequest", f"Invalid value '{top_text}' for $top query option: "
                                f"expected an integer from 1 to {MAX_TOP}.")
            top = int(top_text)
        offset = read_offset_token(request.arg("$skiptoken"),
                                   message="Invalid $skiptoken: use the @odata.nextLink as returned.")
        with self.lock:
            items = list(self._alerts.values())
            if filter_text:
                try:
                    predicate = ODataFilter(filter_text, properties=ALERT_PROPERTIES, type_name=ALERT_TYPE_NAME,
                                            datetime_properties=ALERT_DATETIME_PROPERTIES).predicate
                except FilterError as exc:
                    raise HttpError(400, "BadRequest", f"Invalid filter clause: {exc}") from None
                items = [item for item in items if predicate(item)]
            items = self._order(items, request.arg("$orderby"))
            page_size = min(top or self.page_size, self.page_size)
            page = items[offset:offset + page_size]
            body: dict[str, Any] = {"@odata.context": f"{self.base_url}/beta/$metadata#security/partner/securityAlerts"}
            if count_text == "true":
                body["@odata.count"] = len(items)
            body["value"] = [self._project(item, select) for item in page]
        if offset + page_size < len(items):
            params = [(k, v) for k, values in request.query.items() if k.lower() != "$skiptoken" for v in values]
            params.append(("$skiptoken", offset_token(offset + page_size)))
            body["@odata.nextLink"] = f"{self.base_url}{request.path}?{urlencode(params)}"
        return self._ok(200, body, request)


    @staticmethod
    def _select(text: str | None, allowed: Iterable[str], type_name: str) -> list[str] | None:
        if not text:
            return None
        names = {name.lower(): name for name in allowed}
        chosen: list[str] = []
        for part in text.split(","):
            name = names.get(part.strip().lower())
            if name is None:
                raise HttpError(400, "BadRequest", f"Parsing OData Select and Expand failed: Could not find a "
                                f"property named '{part.strip()}' on type '{type_name}'.")
            chosen.append(name)
        if "id" not in chosen:
            chosen.insert(0, "id")
        return chosen

    @staticmethod
    def _order(items: list[dict[str, Any]], orderby: str | None) -> list[dict[str, Any]]:
        if not orderby:
            return sorted(items, key=lambda item: (str(item.get("detectedDateTime") or ""), item["id"]))
        parts = orderby.split()
        names = {name.lower(): name for name in ALERT_PROPERTIES}
        prop = names.get(parts[0].lower())
        if prop is None or len(parts) > 2 or (len(parts) == 2 and parts[1].lower() not in ("asc", "desc")):
            raise HttpError(400, "BadRequest", f"Invalid $orderby '{orderby}': use '<property> [asc|desc]'.")
        reverse = len(parts) == 2 and parts[1].lower() == "desc"
        return sorted(items, key=lambda item: (item.get(prop) is None, str(item.get(prop))), reverse=reverse)

    @staticmethod
    def _project(item: dict[str, Any], select: list[str] | None) -> dict[str, Any]:
        names = select or list(ALERT_PROPERTIES)
        return copy.deepcopy({name: item.get(name) for name in names})

    def _alert(self, alert_id: str) -> dict[str, Any]:
        alert = self._alerts.get(alert_id.lower())
        if alert is None:
            raise HttpError(404, "NotFound", f"The partner security alert '{alert_id}' was not found.")
        return alert

    @route("GET", r"/beta/security/partner/securityAlerts/(?P<id>[^/]+)")
    def get_alert(self, request: Request) -> Response:
        self._require_partner(request, ALERT_READ_PERMISSIONS)
        select = self._select(request.arg("$select"), ALERT_PROPERTIES, ALERT_TYPE_NAME)
        with self.lock:
            alert = self._alert(request.params["id"])
            body = {"@odata.context": f"{self.base_url}/beta/$metadata#security/partner/securityAlerts/$entity",
                    **self._project(alert, select)}
        return self._ok(200, body, request)

    @route("PATCH", r"/beta/security/partner/securityAlerts/(?P<id>[^/]+)")
    def update_alert(self, request: Request) -> Response:
        claims = self._require_partner(request, ALERT_WRITE_PERMISSIONS)
        patch = request.json()
        if not isinstance(patch, dict):
            raise HttpError(400, "BadRequest", "The request body must be a JSON object.")
        unknown = [key for key in patch if key not in ("status", "resolvedReason", "@odata.type")]
        if unknown:
            raise HttpError(400, "BadRequest", f"Property '{unknown[0]}' cannot be updated; only status and "
                            "resolvedReason can.")
        status = patch.get("status")
        if status is None:
            raise HttpError(400, "BadRequest", "The property 'status' is required.")
        for prop in ("status", "resolvedReason"):
            value = patch.get(prop)
            if value is not None and value not in ALERT_ENUMS[prop]:
                raise HttpError(400, "BadRequest", f"Requested value '{value}' was not found for property '{prop}'; "
                                f"expected one of {', '.join(ALERT_ENUMS[prop][:-1])}.")
        actor = str(claims.get("upn") or claims.get("appid") or claims.get("oid") or "")
        now = _iso(_now())
        with self.lock:
            alert = self._alert(request.params["id"])
            previous = alert.get("status")
            alert["status"] = status
            if "resolvedReason" in patch:
                alert["resolvedReason"] = patch["resolvedReason"]
            if status == "resolved":
                alert["resolvedBy"] = actor
                alert["resolvedOnDateTime"] = now
            alert["activityLogs"].append(
                {"statusFrom": previous, "statusTo": status, "updatedBy": actor, "updatedDateTime": now})
            body = {"@odata.context": f"{self.base_url}/beta/$metadata#security/partner/securityAlerts/$entity",
                    **self._project(alert, None)}
        return self._ok(200, body, request)

    # -- users --------------------------------------------------------------------------------------

    def _user_view(self, user: dict[str, Any], select: list[str] | None) -> dict[str, Any]:
        names = select or list(USER_DEFAULT_PROPERTIES)
        view: dict[str, Any] = {}
        for name in names:
            if name == "businessPhones":
                view[name] = []
            else:
                view[name] = copy.deepcopy(user.get(name))
        return view

    @route("GET", r"/v1\.0/users/(?P<user>[^/]+)")
    def get_user(self, request: Request) -> Response:
        self._require_permission(request, USER_READ_PERMISSIONS)
        select = self._select(request.arg("$select"), USER_SELECTABLE, "microsoft.graph.user")
        with self.lock:
            user = self._user(request, request.params["user"])
            body = {"@odata.context": f"{self.base_url}/v1.0/$metadata#users/$entity", **self._user_view(user, select)}
        return self._ok(200, body, request)

    @route("PATCH", r"/v1\.0/users/(?P<user>[^/]+)")
    def update_user(self, request: Request) -> Response:
        self._require_permission(request, USER_WRITE_PERMISSIONS)
        patch = _without_annotations(request.json(), "#microsoft.graph.user")
        if not patch:
            raise HttpError(400, "Request_BadRequest", "The request body must be a JSON object with the properties "
                            "to update.")
        for key in patch:
            if key not in ("accountEnabled", "passwordProfile", "displayName"):
                raise HttpError(400, "Request_BadRequest", f"Invalid property '{key}'.")
        if "accountEnabled" in patch and not isinstance(patch["accountEnabled"], bool):
            raise HttpError(400, "Request_BadRequest", "Invalid value for property 'accountEnabled': expected a "
                            "boolean.")
        profile = patch.get("passwordProfile")
        if profile is not None:
            if not isinstance(profile, dict):
                raise HttpError(400, "Request_BadRequest", "Invalid value for property 'passwordProfile'.")
            profile = _without_annotations(profile, "#microsoft.graph.passwordProfile")
            for key, value in profile.items():
                if key == "password":
                    if not isinstance(value, str) or len(value) < 8 or len(value) > 256:
                        raise HttpError(400, "Request_BadRequest", "The specified password does not comply with "
                                        "password complexity requirements. Please provide a different password.")
                elif key in ("forceChangePasswordNextSignIn", "forceChangePasswordNextSignInWithMfa"):
                    if not isinstance(value, bool):
                        raise HttpError(400, "Request_BadRequest", f"Invalid value for property '{key}'.")
                else:
                    raise HttpError(400, "Request_BadRequest", f"Invalid property '{key}' in passwordProfile.")
        with self.lock:
            user = self._user(request, request.params["user"])
            if "accountEnabled" in patch:
                user["accountEnabled"] = patch["accountEnabled"]
            if "displayName" in patch:
                user["displayName"] = str(patch["displayName"])
            if profile is not None:
                for key in ("forceChangePasswordNextSignIn", "forceChangePasswordNextSignInWithMfa"):
                    if key in profile:
                        user["passwordProfile"][key] = profile[key]
                if "password" in profile:  # never stored: only the fact that it changed
                    user["lastPasswordChangeDateTime"] = _iso(_now())
                    user["_passwordChanges"] += 1
        return self._empty(204, request)

    @route("POST", r"/v1\.0/users/(?P<user>[^/]+)/revokeSignInSessions")
    def revoke_sessions(self, request: Request) -> Response:
        self._require_permission(request, USER_REVOKE_PERMISSIONS)
        with self.lock:
            user = self._user(request, request.params["user"])
            user["signInSessionsValidFromDateTime"] = _now().strftime("%Y-%m-%dT%H:%M:%SZ")
            user["_revocations"] += 1
        return self._ok(200, {"@odata.context": f"{self.base_url}/v1.0/$metadata#Edm.Boolean", "value": True}, request)

    # -- mail -----------------------------------------------------------------------------------------

    @route("POST", r"/v1\.0/users/(?P<user>[^/]+)/sendMail")
    def send_mail(self, request: Request) -> Response:
        self._require_permission(request, MAIL_SEND_PERMISSIONS, "ErrorAccessDenied")
        payload = _action_parameters(request.json(), ("message", "saveToSentItems"))
        if not isinstance(payload.get("message"), dict):
            raise HttpError(400, "ErrorInvalidRequest", "The request body must hold a 'message' object.")
        message = payload["message"]
        body = message.get("body") or {}
        if not isinstance(body, dict) or str(body.get("contentType", "Text")).lower() not in ("text", "html"):
            raise HttpError(400, "ErrorInvalidRequest", "message.body.contentType must be Text or HTML.")
        recipients: list[str] = []
        for field_name in ("toRecipients", "ccRecipients", "bccRecipients"):
            entries = message.get(field_name) or []
            if not isinstance(entries, list):
                raise HttpError(400, "ErrorInvalidRequest", f"message.{field_name} must be an array.")
            for entry in entries:
                address = (entry.get("emailAddress") or {}).get("address") if isinstance(entry, dict) else None
                if not isinstance(address, str) or not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", address):
                    raise HttpError(400, "ErrorInvalidRecipients",
                                    "At least one recipient is not valid., Recipient is not resolved.")
                recipients.append(address)
        if not recipients:
            raise HttpError(400, "ErrorInvalidRecipients", "At least one recipient is not valid., A message can't be "
                            "sent because it contains no recipients.")
        save = payload.get("saveToSentItems", True)
        if not isinstance(save, bool):
            raise HttpError(400, "ErrorInvalidRequest", "saveToSentItems must be true or false.")
        attachments = _file_attachments(message.get("attachments"))
        with self.lock:
            sender = self._user(request, request.params["user"])
            self._mail.append({
                "id": str(uuid.uuid4()), "tenantId": self._tenant(request),
                "from": sender["userPrincipalName"], "fromUserId": sender["id"],
                "subject": message.get("subject", ""), "contentType": body.get("contentType", "Text"),
                "content": body.get("content", ""), "to": recipients, "message": copy.deepcopy(message),
                "saveToSentItems": bool(save), "sentDateTime": _iso(_now()), "attachments": attachments,
            })
        return self._empty(202, request)

    @route("GET", r"/_sandbox/graph/state", auth=False)
    def get_state(self, request: Request) -> Response:
        return json_response(200, self.state())

    @route("POST", r"/_sandbox/graph/state", auth=False)
    def post_state(self, request: Request) -> Response:
        body = request.json()
        if not isinstance(body, dict):
            raise HttpError(400, "BadRequest", "Send a JSON object of switches, e.g. {\"alerts_require_mfa\": true}.")
        self.set_state(**body)
        return json_response(200, self.state())

    @route("GET", r"/_sandbox/graph/mail", auth=False)
    def list_mail(self, request: Request) -> Response:
        return json_response(200, {"value": self.sent_mail()})

    # -- incoming-webhook sink (Teams/Slack style) -------------------------------------------------

    @route("POST", r"/_sandbox/hooks/(?P<name>[A-Za-z0-9_.-]+)", auth=False)
    def post_hook(self, request: Request) -> Response:
        """Like a Teams incoming webhook: a JSON body with "text" answers 200 "1"."""
        payload = request.json()
        if not isinstance(payload, dict) or not isinstance(payload.get("text"), str) or not payload["text"].strip():
            raise HttpError(400, "BadRequest", "Post a JSON object with a non-empty 'text'.")
        with self.lock:
            self._hooks.append({"name": request.params["name"], "body": payload, "receivedDateTime": _iso(_now()),
                                "contentType": request.headers.get("Content-Type", "")})
        return Response(200, b"1", {"Content-Type": "text/plain; charset=utf-8"})

    @route("GET", r"/_sandbox/hooks", auth=False)
    def list_hooks(self, request: Request) -> Response:
        return json_response(200, {"value": self.hook_posts()})

    # -- applications and service principals --------------------------------------------------------

    _OBJECT = r"/v1\.0/(?P<kind>applications|servicePrincipals)(?:/(?P<id>[^/()]+)|\(appId='(?P<appid>[^']+)'\))"

    def _object_from(self, request: Request) -> tuple[str, dict[str, Any]]:
        kind = "applications" if request.params["kind"].lower() == "applications" else "servicePrincipals"
        return kind, self._directory_object(request, kind, request.params.get("id"), request.params.get("appid"))

    @route("GET", _OBJECT)
    def get_object(self, request: Request) -> Response:
        self._require_permission(request, APP_READ_PERMISSIONS)
        with self.lock:
            kind, record = self._object_from(request)
            body = {"@odata.context": f"{self.base_url}/v1.0/$metadata#{kind}/$entity", "id": record["id"],
                    "appId": record["appId"], "displayName": record["displayName"],
                    "passwordCredentials": [_credential_view(c) for c in record["passwordCredentials"]]}
        return self._ok(200, body, request)

    @route("POST", _OBJECT + r"/addPassword")
    def add_password(self, request: Request) -> Response:
        self._require_permission(request, APP_WRITE_PERMISSIONS)
        payload = _action_parameters(request.json() if request.body.strip() else {}, ("passwordCredential",))
        requested = payload.get("passwordCredential") or {}
        if not isinstance(requested, dict):
            raise HttpError(400, "Request_BadRequest", "passwordCredential must be an object.")
        start = _now()
        end = start + dt.timedelta(days=730)
        try:
            if requested.get("startDateTime"):
                start = parse_datetime(str(requested["startDateTime"]))
            if requested.get("endDateTime"):
                end = parse_datetime(str(requested["endDateTime"]))
        except ValueError as exc:
            raise HttpError(400, "Request_BadRequest", f"Invalid date: {exc}") from None
        if end <= start:
            raise HttpError(400, "Request_BadRequest", "endDateTime must be later than startDateTime.")
        secret = _new_secret()
        credential = {"customKeyIdentifier": None, "displayName": requested.get("displayName"),
                      "endDateTime": _iso(end), "hint": secret[:3], "keyId": str(uuid.uuid4()),
                      "startDateTime": _iso(start)}
        with self.lock:
            _, record = self._object_from(request)
            record["passwordCredentials"].append(credential)
        body = {"@odata.context": f"{self.base_url}/v1.0/$metadata#microsoft.graph.passwordCredential",
                **credential, "secretText": secret}
        return self._ok(200, body, request)

    @route("POST", _OBJECT + r"/removePassword")
    def remove_password(self, request: Request) -> Response:
        self._require_permission(request, APP_WRITE_PERMISSIONS)
        payload = _action_parameters(request.json(), ("keyId",))
        key_id = payload.get("keyId")
        if not isinstance(key_id, str) or not key_id:
            raise HttpError(400, "Request_BadRequest", "The property 'keyId' is required.")
        with self.lock:
            _, record = self._object_from(request)
            remaining = [c for c in record["passwordCredentials"] if c["keyId"].lower() != key_id.lower()]
            if len(remaining) == len(record["passwordCredentials"]):
                raise HttpError(400, "Request_BadRequest", f"No password credential with keyId '{key_id}' exists "
                                "on this object.")
            record["passwordCredentials"] = remaining
        return self._empty(204, request)

    # -- directory roles --------------------------------------------------------------------------

    def _roles(self, tenant: str) -> list[dict[str, Any]]:
        active = sorted({role for user in self._users.get(tenant, {}).values() for role in user["directoryRoles"]})
        return [{"id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{tenant}/{template}")), "deletedDateTime": None,
                 "description": ROLE_TEMPLATES.get(template, template), "displayName": ROLE_TEMPLATES.get(template,
                                                                                                          template),
                 "roleTemplateId": template} for template in active]

    @route("GET", r"/v1\.0/directoryRoles")
    def list_roles(self, request: Request) -> Response:
        self._require_permission(request, ROLE_READ_PERMISSIONS)
        with self.lock:
            roles = self._roles(self._tenant(request))
        return self._ok(200, {"@odata.context": f"{self.base_url}/v1.0/$metadata#directoryRoles", "value": roles},
                        request)

    # Addressed by object id (/directoryRoles/{id}) or by template id, in the documented form
    # /directoryRoles(roleTemplateId='{id}'); the older /directoryRoles/roleTemplateId={id} is not
    # documented any more and gets Graph's answer to a malformed object id (see sandbox/README.md).
    _ROLE = r"/v1\.0/directoryRoles(?:/(?P<role>[^/()]+)|\(roleTemplateId='(?P<template>[^']*)'\))"

    def _role(self, request: Request) -> dict[str, Any]:
        tenant = self._tenant(request)
        roles = self._roles(tenant)
        template = request.params.get("template")
        if template is not None:
            key = f"roleTemplateId='{template}'"
            role = next((r for r in roles if r["roleTemplateId"] == template.lower()), None)
        else:
            key = request.params["role"]
            try:
                uuid.UUID(key)
            except ValueError:
                raise HttpError(400, "Request_BadRequest", f"Invalid object identifier '{key}'.") from None
            role = next((r for r in roles if r["id"] == key.lower()), None)
        if role is None:
            raise HttpError(404, "Request_ResourceNotFound", f"Resource '{key}' does not exist or one of its "
                            "queried reference-property objects are not present.")
        return role

    @route("GET", _ROLE)
    def get_role(self, request: Request) -> Response:
        self._require_permission(request, ROLE_READ_PERMISSIONS)
        with self.lock:
            role = self._role(request)
        return self._ok(200, {"@odata.context": f"{self.base_url}/v1.0/$metadata#directoryRoles/$entity", **role},
                        request)

    @route("GET", _ROLE + r"/members")
    def list_role_members(self, request: Request) -> Response:
        self._require_permission(request, ROLE_READ_PERMISSIONS)
        tenant = self._tenant(request)
        select = self._select(request.arg("$select"), USER_SELECTABLE, "microsoft.graph.directoryObject")
        with self.lock:
            role = self._role(request)
            members = [{"@odata.type": "#microsoft.graph.user", **self._user_view(user, select)}
                       for user in self._users.get(tenant, {}).values()
                       if role["roleTemplateId"] in user["directoryRoles"]]
        return self._ok(200, {"@odata.context": f"{self.base_url}/v1.0/$metadata#directoryObjects",
                              "value": members}, request)

    # -- authentication methods and the audit log (customer tenants) -------------------------------

    def _load_posture_and_methods(self, section: dict[str, Any]) -> None:
        """Scenario keys ``authenticationMethods``, ``directoryAudits``, ``partnerSecurityScore`` and
        ``delegatedAdminRelationships`` (called under the lock by :meth:`reset`)."""
        self._methods = {}
        for tenant, users in section.get("authenticationMethods", {}).items():
            per_user: dict[str, dict[str, list[dict[str, Any]]]] = {}
            for key, methods in users.items():
                record = self._find_user(tenant.lower(), key)
                user_id = (record["id"] if record else key).lower()
                emails = [{"id": EMAIL_METHOD_ID, "emailAddress": m["emailAddress"],
                           "createdDateTime": m.get("createdDateTime")} for m in methods.get("emailMethods", [])[:1]]
                phones = [{"id": PHONE_METHOD_IDS[m.get("phoneType", "mobile")], "phoneNumber": m["phoneNumber"],
                           "phoneType": m.get("phoneType", "mobile"),
                           "smsSignInState": m.get("smsSignInState", "notConfigured"),
                           "createdDateTime": m.get("createdDateTime")} for m in methods.get("phoneMethods", [])]
                per_user[user_id] = {"email": emails, "phone": phones}
            self._methods[tenant.lower()] = per_user
        self._audits = {}
        for tenant, records in section.get("directoryAudits", {}).items():
            self._audits[tenant.lower()] = [
                {"id": r.get("id") or str(uuid.uuid4()), "category": r.get("category", "UserManagement"),
                 "correlationId": r.get("correlationId") or str(uuid.uuid4()), "result": r.get("result", "success"),
                 "resultReason": r.get("resultReason", ""), "activityDisplayName": r["activityDisplayName"],
                 "activityDateTime": r["activityDateTime"],
                 "loggedByService": r.get("loggedByService", "Authentication Methods"),
                 "operationType": r.get("operationType", "Add"),
                 "initiatedBy": copy.deepcopy(r.get("initiatedBy") or {}),
                 "targetResources": copy.deepcopy(r.get("targetResources") or []),
                 "additionalDetails": copy.deepcopy(r.get("additionalDetails") or [])} for r in records]
        score = section.get("partnerSecurityScore")
        self._score = None
        self._requirements = []
        if isinstance(score, dict):
            self._score = {"id": score.get("id", "score"), "currentScore": score.get("currentScore"),
                           "maxScore": score.get("maxScore"), "updatedDateTime": score.get("updatedDateTime"),
                           "lastRefreshDateTime": score.get("lastRefreshDateTime")}
            self._requirements = [copy.deepcopy(r) for r in score.get("requirements", [])]
        self._gdap = [copy.deepcopy(r) for r in section.get("delegatedAdminRelationships", [])]

    def _methods_of(self, request: Request) -> dict[str, list[dict[str, Any]]]:
        user = self._user(request, request.params["user"])
        found = self._methods.get(self._tenant(request), {}).get(user["id"].lower())
        return found or {"email": [], "phone": []}

    @route("GET", r"/v1\.0/users/(?P<user>[^/]+)/authentication/(?P<kind>emailMethods|phoneMethods)")
    def list_auth_methods(self, request: Request) -> Response:
        self._require_permission(request, AUTH_METHOD_READ_PERMISSIONS)
        kind = request.params["kind"]
        type_name = "emailAuthenticationMethod" if kind == "emailMethods" else "phoneAuthenticationMethod"
        with self.lock:
            methods = self._methods_of(request)["email" if kind == "emailMethods" else "phone"]
            user_id = self._user(request, request.params["user"])["id"]
            value = [{"@odata.type": f"#microsoft.graph.{type_name}", **copy.deepcopy(m)} for m in methods]
        return self._ok(200, {"@odata.context": f"{self.base_url}/v1.0/$metadata#users('{user_id}')/authentication/"
                                                f"{kind}", "value": value}, request)

    @route("GET", r"/v1\.0/auditLogs/directoryAudits")
    def list_directory_audits(self, request: Request) -> Response:
        self._require_permission(request, AUDIT_READ_PERMISSIONS)
        filter_text = request.arg("$filter")
        top_text = request.arg("$top")
        top = self.page_size
        if top_text is not None:
            if not top_text.isdigit() or not 1 <= int(top_text) <= MAX_TOP:
                raise HttpError(400, "BadRequest", f"Invalid value '{top_text}' for $top query option.")
            top = int(top_text)
        offset = read_offset_token(request.arg("$skiptoken"),
                                   message="Invalid $skiptoken: use the @odata.nextLink as returned.")
        with self.lock:
            items = sorted(self._audits.get(self._tenant(request), []),
                           key=lambda r: str(r["activityDateTime"]), reverse=True)
            if filter_text:
                try:
                    predicate = ODataFilter(filter_text, properties=("activityDateTime", "activityDisplayName",
                                                                     "loggedByService", "category", "correlationId",
                                                                     "result"),
                                            type_name="microsoft.graph.directoryAudit",
                                            datetime_properties=("activityDateTime",)).predicate
                except FilterError as exc:
                    raise HttpError(400, "BadRequest", f"Invalid filter clause: {exc}") from None
                items = [item for item in items if predicate(item)]
            page = copy.deepcopy(items[offset:offset + top])
        body: dict[str, Any] = {"@odata.context": f"{self.base_url}/v1.0/$metadata#auditLogs/directoryAudits",
                                "value": page}
        if offset + top < len(items):
            params = [(k, v) for k, values in request.query.items() if k.lower() != "$skiptoken" for v in values]
            params.append(("$skiptoken", offset_token(offset + top)))
            body["@odata.nextLink"] = f"{self.base_url}{request.path}?{urlencode(params)}"
        return self._ok(200, body, request)

    # -- partner posture (partner tenant) -------------------------------------------------------------

    def _require_partner_tenant(self, request: Request, wanted: Iterable[str]) -> None:
        claims = self._require_permission(request, wanted, "Forbidden")
        if str(claims.get("tid", "")).lower() != self._partner_tenant():
            raise HttpError(403, "Forbidden", "This API is available to the partner tenant only; this token is for "
                            f"tenant {claims.get('tid')}.")

    @route("GET", r"/beta/security/partner/securityScore")
    def get_security_score(self, request: Request) -> Response:
        self._require_partner_tenant(request, SCORE_READ_PERMISSIONS)
        with self.lock:
            score = copy.deepcopy(self._score)
        if score is None:
            raise HttpError(404, "NotFound", "No partner security score has been calculated for this partner.")
        return self._ok(200, {"@odata.context": f"{self.base_url}/beta/$metadata#security/partner/securityScore/"
                                                "$entity",
                              "@odata.type": "#microsoft.graph.partner.security.partnerSecurityScore", **score},
                        request)

    @route("GET", r"/beta/security/partner/securityScore/requirements")
    def list_security_requirements(self, request: Request) -> Response:
        self._require_partner_tenant(request, SCORE_READ_PERMISSIONS)
        with self.lock:
            if self._score is None:
                raise HttpError(404, "NotFound", "No partner security score has been calculated for this partner.")
            value = copy.deepcopy(self._requirements)
        return self._ok(200, {"@odata.context": f"{self.base_url}/beta/$metadata#security/partner/securityScore/"
                                                "requirements", "value": value}, request)

    @route("GET", r"/v1\.0/tenantRelationships/delegatedAdminRelationships")
    def list_gdap_relationships(self, request: Request) -> Response:
        self._require_partner_tenant(request, GDAP_READ_PERMISSIONS)
        with self.lock:
            value = [{"@odata.type": "#microsoft.graph.delegatedAdminRelationship", **copy.deepcopy(r)}
                     for r in self._gdap]
        return self._ok(200, {"@odata.context": f"{self.base_url}/v1.0/$metadata#tenantRelationships/"
                                                "delegatedAdminRelationships", "value": value}, request)
