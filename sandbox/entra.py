"""Entra ID (login.microsoftonline.com) stand-in: discovery, JWKS and the v2.0 token endpoint.

Enough for MSAL Python and azure-identity pointed at it as authority host: refresh-token
redemption (Secure Application Model, in the partner tenant and, GDAP-style, in customer
tenants), client credentials with a client secret, and Entra's error bodies for the failures
the app must recognise (AADSTS700082 expired, 50076 / 50078 MFA, 65001 consent, 7000215 bad
secret). Every refresh-token redemption rolls the token; the old one stops working after the
scenario's grace period (a deliberate departure: see sandbox/README.md).

Run-time switches: ``POST /_sandbox/entra/state`` with any of ``refresh_token_state``
(valid | expired | mfa_required | mfa_expired | consent_required), ``mfa`` (amr carries "mfa"),
``refresh_token_grace_seconds``, ``tenant_states`` ({tenant id: state}); ``GET`` shows them.
``POST /_sandbox/entra/refresh_tokens`` mints a fresh refresh token (as after re-consent).

The function app's own API (the admin API) is an app in the scenario with ``identifier_uris`` and
``app_roles``; operator apps get its roles by client credentials (scope ``api://<id>/.default``), and
``POST /_sandbox/entra/operator_tokens`` with ``{"username": ...}`` (sandbox only: no sign-in page)
issues a user's access token for it carrying the roles the scenario's ``operators`` assign. Tokens
for it are v2 tokens (``aud`` is the API's client id), as with ``requestedAccessTokenVersion: 2``.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from sandbox import ids
from sandbox.core import HttpError, Request, Response, Service, json_response, route

PARTNER_CENTER = "https://api.partnercenter.microsoft.com"
GRAPH = "https://graph.microsoft.com"
ARM = "https://management.azure.com"
KEY_VAULT_PUBLIC = "https://vault.azure.net"
STORAGE = "https://storage.azure.com"
RESERVED_SCOPES = frozenset({"openid", "profile", "offline_access", "email"})
STATES = ("valid", "expired", "mfa_required", "mfa_expired", "consent_required")

AZURE_CLI_CLIENT_ID = "04b07795-8ddb-461a-bbee-02f9e1bf7b46"
"""The public client an operator signs in with (Azure CLI's), the ``azp`` of their tokens."""

_TENANT = r"(?P<tenant>[^/]+)"


@dataclass
class App:
    client_id: str
    name: str
    secrets: list[str]
    delegated: dict[str, list[str]] = field(default_factory=dict)
    roles: dict[str, list[str]] = field(default_factory=dict)
    tenants: list[str] = field(default_factory=list)
    identifier_uris: list[str] = field(default_factory=list)
    """App ID URIs of an app that exposes an API (``api://<client id>``)."""
    app_roles: list[str] = field(default_factory=list)
    """App roles the API defines (values, such as ``FraudResponder.Read``)."""


@dataclass
class RefreshGrant:
    client_id: str
    issued_at: float
    superseded_at: float | None = None


def _now_text() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _v1_body(body: dict[str, Any], resource: str, lifetime: int) -> dict[str, Any]:
    """The v1 endpoint's token response: numbers as strings, plus expires_on / not_before / resource."""
    now = int(time.time())
    return {**body, "expires_in": str(lifetime), "ext_expires_in": str(lifetime), "expires_on": str(now + lifetime),
            "not_before": str(now), "resource": resource}


class EntraService(Service):
    name = "entra"
    audiences = ()

    # -- state ----------------------------------------------------------------------------------

    def reset(self) -> None:
        section = self.section
        tenants = self.sandbox.scenario.get("tenants", {})
        partner = tenants.get("partner", {})
        self.partner_tenant: str = str(partner.get("id", ids.PARTNER_TENANT_ID)).lower()
        self.tenant_ids: dict[str, str] = {self.partner_tenant: self.partner_tenant}
        for tenant in [partner, *tenants.get("customers", [])]:
            tid = str(tenant.get("id", "")).lower()
            if tid:
                self.tenant_ids[tid] = tid
                for domain in tenant.get("domains", []) + ([tenant["domain"]] if tenant.get("domain") else []):
                    self.tenant_ids[str(domain).lower()] = tid
        self.apps: dict[str, App] = {}
        for raw in section.get("apps", []):
            app = App(
                client_id=str(raw["client_id"]).lower(),
                name=str(raw.get("name", raw["client_id"])),
                secrets=[str(s) for s in raw.get("secrets", [raw["secret"]] if "secret" in raw else [])],
                delegated={str(k).rstrip("/"): list(v) for k, v in raw.get("delegated", {}).items()},
                roles={str(k).rstrip("/"): list(v) for k, v in raw.get("roles", {}).items()},
                tenants=[str(t).lower() for t in raw.get("tenants", [self.partner_tenant])],
                identifier_uris=[str(u).rstrip("/") for u in raw.get("identifier_uris", [])],
                app_roles=[str(r) for r in raw.get("app_roles", [])],
            )
            self.apps[app.client_id] = app
        user = section.get("partner_user", {})
        self.user_oid: str = str(user.get("oid", "99999999-0001-4000-8000-000000000001"))
        self.user_upn: str = str(user.get("upn", "admin-agent@contoso-csp.example"))
        self.grace_seconds: float = float(section.get("refresh_token_grace_seconds", 30))
        self.access_token_lifetime: int = int(section.get("access_token_lifetime_seconds", 3600))
        self.refresh_token_state: str = str(section.get("refresh_token_state", "valid"))
        self.tenant_states: dict[str, str] = {
            str(k).lower(): str(v) for k, v in section.get("tenant_states", {}).items()
        }
        self.mfa: bool = bool(section.get("mfa", True))
        self.operators: dict[str, list[str]] = {
            str(o["username"]).lower(): [str(r) for r in o.get("roles", [])] for o in section.get("operators", [])
        }
        self.refresh_tokens: dict[str, RefreshGrant] = {}
        now = time.time()
        for raw in section.get("refresh_tokens", []):
            self.refresh_tokens[str(raw["token"])] = RefreshGrant(str(raw["client_id"]).lower(), now)

    def app_settings(self) -> dict[str, str]:
        """The app's local identity (stands in for its managed identity) for ``Sandbox.app_settings``."""
        settings: dict[str, str] = {}
        api = self.api_app()
        if api is not None:
            settings["ADMIN_API_CLIENT_ID"] = api.client_id
        local = self.apps.get(ids.LOCAL_APP_CLIENT_ID)
        if local is None or not local.secrets:
            return settings
        return {**settings, "AZURE_TENANT_ID": self.partner_tenant, "AZURE_CLIENT_ID": local.client_id,
                "AZURE_CLIENT_SECRET": local.secrets[0]}

    def api_app(self, resource: str | None = None) -> App | None:
        """The app exposing an API (app roles) named by ``resource`` (App ID URI or client id), or the first one."""
        for app in self.apps.values():
            if not app.app_roles:
                continue
            if resource is None or resource.lower() == app.client_id or resource in app.identifier_uris:
                return app
        return None

    def operator_token(self, username: str, roles: list[str] | None = None) -> str:
        """A user's access token for the admin API (v2: ``aud`` is its client id) with the user's app roles."""
        api = self.api_app()
        if api is None:
            raise HttpError(400, "invalid_request", "The scenario defines no app with app_roles (the admin API).")
        name = username.strip().lower()
        if roles is None:
            if name not in self.operators:
                raise HttpError(400, "invalid_request", f"No operator {username!r} in the scenario; known: "
                                f"{', '.join(sorted(self.operators)) or 'none'} (or send roles).")
            roles = self.operators[name]
        unknown = [r for r in roles if r not in api.app_roles]
        if unknown:
            raise HttpError(400, "invalid_request", f"App role {unknown[0]!r} is not defined by {api.name}; "
                            f"defined: {', '.join(api.app_roles)}.")
        oid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"user/{self.partner_tenant}/{name}"))
        extra: dict[str, Any] = {"idtyp": "user", "preferred_username": name, "name": name.split("@")[0]}
        return self.sandbox.tokens.issue(
            tenant=self.partner_tenant, audience=api.client_id, client_id=AZURE_CLI_CLIENT_ID, oid=oid,
            scp=["user_impersonation"], roles=roles or None, amr=["pwd", "mfa"], upn=name,
            lifetime=self.access_token_lifetime, extra=extra)

    def issue_refresh_token(self, client_id: str = ids.PARTNER_APP_CLIENT_ID) -> str:
        """A new refresh token for the SAM user and ``client_id`` (as after consent)."""
        token = "0.sandbox." + secrets.token_urlsafe(48)
        with self.lock:
            self.refresh_tokens[token] = RefreshGrant(client_id.lower(), time.time())
        return token

    def set_state(self, **changes: Any) -> None:
        """Change switches at run time (same names as the scenario section)."""
        with self.lock:
            if "refresh_token_state" in changes:
                state = str(changes["refresh_token_state"])
                if state not in STATES:
                    raise HttpError(400, "invalid_request", f"refresh_token_state must be one of {', '.join(STATES)}")
                self.refresh_token_state = state
            if "mfa" in changes:
                self.mfa = bool(changes["mfa"])
            if "refresh_token_grace_seconds" in changes:
                self.grace_seconds = float(changes["refresh_token_grace_seconds"])
            if "access_token_lifetime_seconds" in changes:
                self.access_token_lifetime = int(changes["access_token_lifetime_seconds"])
            if "tenant_states" in changes:
                states = {str(k).lower(): str(v) for k, v in dict(changes["tenant_states"]).items()}
                bad = [v for v in states.values() if v not in STATES]
                if bad:
                    raise HttpError(400, "invalid_request",
                                    f"tenant state {bad[0]!r} is not one of {', '.join(STATES)}")
                self.tenant_states = states

    def state(self) -> dict[str, Any]:
        return {
            "refresh_token_state": self.refresh_token_state, "mfa": self.mfa,
            "refresh_token_grace_seconds": self.grace_seconds,
            "access_token_lifetime_seconds": self.access_token_lifetime, "tenant_states": self.tenant_states,
        }

    def add_synthetic_customers(self, added: list[dict[str, str]]) -> None:
        """Benchmarks' synthetic customers (``POST /_sandbox/synthetic``): their tenants exist and the SAM
        app (every app consented in the customers' tenants) may get tokens there."""
        with self.lock:
            for item in added:
                tenant = item["customerId"].lower()
                self.tenant_ids[tenant] = tenant
                for app in self.apps.values():
                    if app.delegated and tenant not in app.tenants:
                        app.tenants.append(tenant)

    # -- errors ---------------------------------------------------------------------------------

    def aad_error(self, status: int, error: str, code: int, description: str, request: Request | None = None,
                  *, suberror: str | None = None, headers: dict[str, str] | None = None) -> Response:
        """An error body as Entra sends it: error, error_description starting "AADSTS<code>: ", ..."""
        trace_id = str(uuid.uuid4())
        correlation_id = (request.headers.get("client-request-id") if request else None) or str(uuid.uuid4())
        timestamp = _now_text()
        body: dict[str, Any] = {
            "error": error,
            "error_description": f"AADSTS{code}: {description} Trace ID: {trace_id} "
                                 f"Correlation ID: {correlation_id} Timestamp: {timestamp}",
            "error_codes": [code],
            "timestamp": timestamp,
            "trace_id": trace_id,
            "correlation_id": correlation_id,
            "error_uri": f"{self.base_url}/error?code={code}",
        }
        if suberror:
            body["suberror"] = suberror
        return json_response(status, body, {"Cache-Control": "no-store, no-cache", "Pragma": "no-cache",
                                            **(headers or {})})

    def error(self, err: HttpError) -> Response:
        match = re.fullmatch(r"AADSTS(\d+)", err.code)
        if match:
            return self.aad_error(err.status, "invalid_request", int(match.group(1)), err.message, headers=err.headers)
        return self.aad_error(err.status, err.code.lower() if err.code.islower() else "invalid_request", 900561,
                              err.message, headers=err.headers)

    # -- discovery ------------------------------------------------------------------------------

    def _tenant(self, request: Request) -> str:
        name = request.params["tenant"].lower()
        if name in ("common", "organizations"):
            return name
        tid = self.tenant_ids.get(name)
        if tid is None:
            raise HttpError(400, "AADSTS90002", f"Tenant '{name}' not found. Check to make sure you have the correct "
                            "tenant ID and are signing into the correct cloud.")
        return tid

    def _openid_configuration(self, request: Request, v2: bool) -> Response:
        tenant = self._tenant(request)
        base = f"{self.base_url}/{request.params['tenant']}"
        issuer = self.sandbox.tokens.issuer_for("{tenantid}" if tenant in ("common", "organizations") else tenant)
        suffix = "/v2.0" if v2 else ""
        return json_response(200, {
            "token_endpoint": f"{base}/oauth2{suffix}/token",
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
            "jwks_uri": f"{base}/discovery{suffix}/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": issuer,
            "request_uri_parameter_supported": False,
            "userinfo_endpoint": f"{self.sandbox.urls().get('graph', GRAPH)}/oidc/userinfo",
            "authorization_endpoint": f"{base}/oauth2{suffix}/authorize",
            "device_authorization_endpoint": f"{base}/oauth2{suffix}/devicecode",
            "http_logout_supported": True,
            "frontchannel_logout_supported": True,
            "end_session_endpoint": f"{base}/oauth2{suffix}/logout",
            "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "acr", "nonce", "preferred_username",
                                 "name", "tid", "ver", "at_hash", "c_hash", "email"],
            "kerberos_endpoint": f"{base}/kerberos",
            "tenant_region_scope": "NA",
            "cloud_instance_name": "microsoftonline.com",
            "cloud_graph_host_name": "graph.windows.net",
            "msgraph_host": "graph.microsoft.com",
        })

    @route("GET", rf"/{_TENANT}/v2\.0/\.well-known/openid-configuration", auth=False)
    def openid_configuration_v2(self, request: Request) -> Response:
        return self._openid_configuration(request, v2=True)

    @route("GET", rf"/{_TENANT}/\.well-known/openid-configuration", auth=False)
    def openid_configuration_v1(self, request: Request) -> Response:
        return self._openid_configuration(request, v2=False)

    @route("GET", rf"(/{_TENANT})?/discovery(/v2\.0)?/keys", auth=False)
    def keys(self, request: Request) -> Response:
        return json_response(200, self.sandbox.tokens.jwks())

    # -- token endpoint -------------------------------------------------------------------------

    @route("POST", rf"/{_TENANT}/oauth2/v2\.0/token", auth=False)
    def token_v2(self, request: Request) -> Response:
        return self._token(request, v1=False)

    @route("POST", rf"/{_TENANT}/oauth2/token", auth=False)
    def token_v1(self, request: Request) -> Response:
        return self._token(request, v1=True)

    def _token(self, request: Request, *, v1: bool) -> Response:
        form = request.form()
        form.update(self._basic_auth(request))
        tenant = self._tenant(request)
        if tenant in ("common", "organizations"):
            return self.aad_error(400, "invalid_request", 90130, "Application does not support the 'common' "
                                  "endpoint for this grant; use a tenant-specific endpoint.", request)
        grant_type = form.get("grant_type", "")
        client_id = form.get("client_id", "").lower()
        if not grant_type:
            return self.aad_error(400, "invalid_request", 900144, "The request body must contain the following "
                                  "parameter: 'grant_type'.", request)
        app = self.apps.get(client_id)
        if app is None:
            return self.aad_error(400, "unauthorized_client", 700016, f"Application with identifier '{client_id}' "
                                  f"was not found in the directory '{tenant}'. This can happen if the application "
                                  "has not been installed by the administrator of the tenant or consented to by "
                                  "any user in the tenant.", request)
        if "client_assertion" in form:
            return self.aad_error(401, "invalid_client", 700027, "Client assertion is not supported by the sandbox; "
                                  "use a client secret.", request)
        secret = form.get("client_secret")
        if secret is None:
            return self.aad_error(401, "invalid_client", 7000218, "The request body must contain the following "
                                  "parameter: 'client_assertion' or 'client_secret'.", request)
        if not any(secrets.compare_digest(secret, s) for s in app.secrets):
            return self.aad_error(401, "invalid_client", 7000215, "Invalid client secret provided. Ensure the secret "
                                  f"being sent in the request is the client secret value, not the client secret ID, "
                                  f"for a secret added to app '{app.client_id}'.", request)
        try:
            resource, permissions = self._scope(form, v1=v1)
        except HttpError as err:
            return self.aad_error(400, "invalid_scope", int(err.code.removeprefix("AADSTS")), err.message, request)
        if grant_type == "client_credentials":
            return self._client_credentials(request, app, tenant, resource, permissions, v1=v1)
        if grant_type == "refresh_token":
            return self._refresh_token(request, form, app, tenant, (resource, permissions), v1=v1)
        return self.aad_error(400, "unsupported_grant_type", 70003, f"The app requested an unsupported grant type "
                              f"'{grant_type}'.", request)

    @staticmethod
    def _basic_auth(request: Request) -> dict[str, str]:
        header = request.headers.get("Authorization", "")
        if not header.lower().startswith("basic "):
            return {}
        try:
            user, _, password = base64.b64decode(header[6:]).decode("utf-8").partition(":")
        except ValueError:
            return {}
        from urllib.parse import unquote_plus

        return {"client_id": unquote_plus(user), "client_secret": unquote_plus(password)}

    def _known_resource(self, resource: str) -> bool:
        key_vaults = {KEY_VAULT_PUBLIC}
        if "key_vault" in self.sandbox.urls():
            key_vaults.add(self.sandbox.url("key_vault"))
        if self.api_app(resource) is not None:
            return True
        return resource in (PARTNER_CENTER, GRAPH, ARM, STORAGE, "https://management.core.windows.net") or \
            resource in key_vaults

    def _scope(self, form: dict[str, str], *, v1: bool) -> tuple[str, list[str]]:
        """(resource, requested permissions) from the v2 scope or the v1 resource parameter."""
        if v1:
            resource = form.get("resource", "").rstrip("/")
            if not resource:
                raise HttpError(400, "AADSTS900144", "The request body must contain the following parameter: "
                                "'resource'.")
            permissions = [".default"]
        else:
            scopes = [s for s in form.get("scope", "").split() if s.lower() not in RESERVED_SCOPES]
            if not scopes:
                raise HttpError(400, "AADSTS900144", "The request body must contain the following parameter: 'scope'.")
            resources: set[str] = set()
            permissions = []
            for scope in scopes:
                match = re.fullmatch(r"((?:https?|api)://[^/]+(?:/[^/]+)*?)/([^/]+)", scope)
                if not match:
                    raise HttpError(400, "AADSTS70011", f"The provided value for the input parameter 'scope' is not "
                                    f"valid. The scope {scope} is not valid.")
                resources.add(match.group(1).rstrip("/"))
                permissions.append(match.group(2))
            if len(resources) > 1:
                raise HttpError(400, "AADSTS28000", "Provided value for the input parameter scope is not valid "
                                "because it contains more than one resource. Scope "
                                f"{form.get('scope', '')} is not valid.")
            resource = resources.pop()
        if not self._known_resource(resource):
            raise HttpError(400, "AADSTS500011", f"The resource principal named {resource} was not found in the "
                            "tenant. This can happen if the application has not been installed by the administrator "
                            "of the tenant or consented to by any user in the tenant.")
        return resource, permissions

    def _audience(self, resource: str) -> str:
        api = self.api_app(resource)
        if api is not None:  # an API with requestedAccessTokenVersion 2: aud is its client id
            return api.client_id
        return ARM if resource == "https://management.core.windows.net" else resource

    def _client_credentials(self, request: Request, app: App, tenant: str, resource: str, permissions: list[str],
                            *, v1: bool) -> Response:
        if permissions != [".default"]:
            return self.aad_error(400, "invalid_scope", 1002012, f"The provided value for scope "
                                  f"{resource}/{permissions[0]} is not valid. Client credential flows must have a "
                                  "scope value with /.default suffixed to the resource identifier "
                                  "(application ID URI).", request)
        if tenant not in app.tenants:
            return self.aad_error(400, "unauthorized_client", 700016, f"Application with identifier "
                                  f"'{app.client_id}' was not found in the directory '{tenant}'.", request)
        roles = app.roles.get(resource)
        access_token = self.sandbox.tokens.issue(
            tenant=tenant, audience=self._audience(resource), client_id=app.client_id,
            oid=str(uuid.uuid5(uuid.NAMESPACE_URL, f"sp/{tenant}/{app.client_id}")),
            roles=roles if roles else None, lifetime=self.access_token_lifetime,
            extra={"idtyp": "app", "app_displayname": app.name},
        )
        body: dict[str, Any] = {"token_type": "Bearer", "expires_in": self.access_token_lifetime,
                                "ext_expires_in": self.access_token_lifetime, "access_token": access_token}
        if v1:
            body = _v1_body(body, resource, self.access_token_lifetime)
        return json_response(200, body, {"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"})

    def _refresh_token(self, request: Request, form: dict[str, str], app: App, tenant: str,
                       scope: tuple[str, list[str]], *, v1: bool) -> Response:
        resource, permissions = scope
        presented = form.get("refresh_token", "")
        now = time.time()
        with self.lock:
            grant = self.refresh_tokens.get(presented)
            state = self.tenant_states.get(tenant, self.refresh_token_state)
            grace = self.grace_seconds
            mfa = self.mfa
        if grant is None or grant.client_id != app.client_id:
            return self.aad_error(400, "invalid_grant", 9002313, "Invalid request. Request is malformed or invalid: "
                                  "the provided value for the input parameter 'refresh_token' is not valid.", request)
        if grant.superseded_at is not None and now > grant.superseded_at + grace:
            return self.aad_error(400, "invalid_grant", 50173, "The provided grant has expired due to it being "
                                  "revoked, a fresh auth token is needed. The refresh token was replaced by a newer "
                                  "one (it rolls on every redemption).", request)
        if state == "expired":
            issued = dt.datetime.fromtimestamp(grant.issued_at - 91 * 86400, dt.UTC).strftime("%m/%d/%Y %H:%M:%S")
            return self.aad_error(400, "invalid_grant", 700082, f"The refresh token has expired due to inactivity. "
                                  f"The token was issued on {issued} and was inactive for 90.00:00:00.", request)
        if state in ("mfa_required", "mfa_expired"):
            resource_id = resource
            if state == "mfa_required":
                text = ("Due to a configuration change made by your administrator, or because you moved to a new "
                        f"location, you must use multi-factor authentication to access '{resource_id}'.")
                return self.aad_error(400, "interaction_required", 50076, text, request, suberror="basic_action")
            text = ("Presented multi-factor authentication has expired due to policies configured by your "
                    f"administrator, you must refresh your multi-factor authentication to access '{resource_id}'.")
            return self.aad_error(400, "interaction_required", 50078, text, request, suberror="basic_action")
        granted = app.delegated.get(resource)
        wanted = granted if permissions == [".default"] else permissions
        if state == "consent_required" or granted is None or any(p not in granted for p in wanted or []):
            return self.aad_error(400, "invalid_grant", 65001, f"The user or administrator has not consented to use "
                                  f"the application with ID '{app.client_id}' named '{app.name}'. Send an "
                                  "interactive authorization request for this user and resource.", request,
                                  suberror="consent_required")
        new_refresh_token = "0.sandbox." + secrets.token_urlsafe(48)
        with self.lock:
            if grant.superseded_at is None:
                grant.superseded_at = now
            self.refresh_tokens[new_refresh_token] = RefreshGrant(app.client_id, now)
        amr = ["pwd", "mfa"] if mfa else ["pwd"]
        extra: dict[str, Any] = {"idtyp": "user", "name": "Sandbox admin agent"}
        if tenant != self.partner_tenant:  # GDAP: a partner user acting in a customer tenant
            extra["idp"] = self.sandbox.tokens.issuer_for(self.partner_tenant)
        access_token = self.sandbox.tokens.issue(
            tenant=tenant, audience=self._audience(resource), client_id=app.client_id, oid=self.user_oid,
            scp=wanted, amr=amr, upn=self.user_upn, lifetime=self.access_token_lifetime, extra=extra,
        )
        body: dict[str, Any] = {
            "token_type": "Bearer",
            "scope": " ".join(f"{resource}/{p}" for p in wanted or []),
            "expires_in": self.access_token_lifetime,
            "ext_expires_in": self.access_token_lifetime,
            "access_token": access_token,
            "refresh_token": new_refresh_token,
        }
        requested = set(form.get("scope", "").split())
        if "openid" in requested:
            body["id_token"] = self._id_token(tenant, app.client_id)
        if form.get("client_info") == "1":
            info = json.dumps({"uid": self.user_oid, "utid": self.partner_tenant}).encode()
            body["client_info"] = base64.urlsafe_b64encode(info).rstrip(b"=").decode()
        if v1:
            body = _v1_body(body, resource, self.access_token_lifetime)
        return json_response(200, body, {"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"})

    def _id_token(self, tenant: str, client_id: str) -> str:
        now = int(time.time())
        return self.sandbox.tokens.sign({
            "aud": client_id, "iss": self.sandbox.tokens.issuer_for(tenant), "iat": now, "nbf": now,
            "exp": now + 3600, "name": "Sandbox admin agent", "oid": self.user_oid,
            "preferred_username": self.user_upn, "sub": self.user_oid, "tid": tenant, "ver": "2.0",
        })

    # -- control --------------------------------------------------------------------------------

    @route("GET", r"/_sandbox/entra/state", auth=False)
    def get_state(self, request: Request) -> Response:
        return json_response(200, self.state())

    @route("POST", r"/_sandbox/entra/state", auth=False)
    def post_state(self, request: Request) -> Response:
        body = request.json()
        if not isinstance(body, dict):
            raise HttpError(400, "invalid_request", "Send a JSON object of switches.")
        self.set_state(**body)
        return json_response(200, self.state())

    @route("POST", r"/_sandbox/entra/operator_tokens", auth=False)
    def post_operator_token(self, request: Request) -> Response:
        body = request.json() if request.body.strip() else {}
        if not isinstance(body, dict) or not isinstance(body.get("username"), str) or not body["username"].strip():
            raise HttpError(400, "invalid_request", 'Send {"username": "alice@contoso-csp.example"} '
                            '(optionally "roles": [...]).')
        roles = body.get("roles")
        if roles is not None and (not isinstance(roles, list) or not all(isinstance(r, str) for r in roles)):
            raise HttpError(400, "invalid_request", "roles must be a list of app role values.")
        token = self.operator_token(body["username"], roles)
        return json_response(201, {"token_type": "Bearer", "expires_in": self.access_token_lifetime,
                                   "access_token": token})

    @route("POST", r"/_sandbox/entra/refresh_tokens", auth=False)
    def post_refresh_token(self, request: Request) -> Response:
        body = request.json() if request.body.strip() else {}
        client_id = str(body.get("client_id", ids.PARTNER_APP_CLIENT_ID)) if isinstance(body, dict) else \
            ids.PARTNER_APP_CLIENT_ID
        return json_response(201, {"refresh_token": self.issue_refresh_token(client_id)})
