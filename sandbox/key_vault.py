"""Key Vault secrets stand-in: the REST surface azure-keyvault-secrets' SecretClient uses.

Get (latest or a version), set (a new version each time), list secrets, list versions (paged with
nextLink), delete and get deleted, behind Key Vault's bearer challenge: an unauthenticated
request gets 401 with ``WWW-Authenticate: Bearer authorization="<entra>/<tenant>",
resource="<vault origin>"``. Tokens must carry ``aud`` = the vault origin (or
https://vault.azure.net) and come from a client listed in the scenario's ``allowed_clients``.
Errors use Key Vault's shape ``{"error": {"code": "SecretNotFound", "message": ...}}``.
"""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from sandbox import ids
from sandbox.core import HttpError, Request, Response, Service, json_response, route

API_VERSIONS = ("7.0", "7.1", "7.2", "7.3", "7.4", "7.5", "7.6", "2016-10-01", "2025-07-01", "2026-04-01")
PAGE_SIZE = 25
_NAME = r"(?P<name>[^/]+)"
_VALID_NAME = re.compile(r"[0-9a-zA-Z-]{1,127}")


@dataclass
class SecretVersion:
    version: str
    value: str
    created: int
    updated: int
    enabled: bool = True
    content_type: str | None = None
    tags: dict[str, str] = field(default_factory=dict)


def _not_found(name: str, version: str | None = None) -> HttpError:
    what = f"{name}/{version}" if version else name
    return HttpError(404, "SecretNotFound", f"A secret with (name/id) {what} was not found in this key vault. If you "
                     "recently deleted this secret you may be able to recover it using the correct recovery command. "
                     "For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182")


class KeyVaultService(Service):
    name = "key_vault"
    audiences = ("https://vault.azure.net",)

    def reset(self) -> None:
        self.tenant: str = str(self.section.get("tenant", ids.PARTNER_TENANT_ID)).lower()
        self.allowed_clients: set[str] = {str(c).lower() for c in self.section.get("allowed_clients", [])}
        self.secrets: dict[str, list[SecretVersion]] = {}
        self.deleted: dict[str, list[SecretVersion]] = {}
        for name, seed in self.section.get("secrets", {}).items():
            values = seed if isinstance(seed, list) else [seed]
            for value in values:
                self.put(str(name), str(value))

    # -- state ----------------------------------------------------------------------------------

    def put(self, name: str, value: str, *, content_type: str | None = None,
            tags: dict[str, str] | None = None, enabled: bool = True) -> SecretVersion:
        """Add a new version of ``name`` (tests use this to seed or overwrite directly)."""
        now = int(time.time())
        entry = SecretVersion(uuid.uuid4().hex, value, now, now, enabled, content_type, dict(tags or {}))
        with self.lock:
            self.secrets.setdefault(name.lower(), []).append(entry)
            self.deleted.pop(name.lower(), None)
        return entry

    def latest(self, name: str) -> SecretVersion | None:
        with self.lock:
            versions = self.secrets.get(name.lower())
            return versions[-1] if versions else None

    # -- service hooks --------------------------------------------------------------------------

    def accepted_audiences(self) -> tuple[str, ...]:
        return (self.base_url, self.base_url + "/", *self.audiences)

    def challenge(self) -> str:
        authority = f'{self.sandbox.urls().get("entra", "")}/{self.tenant}'
        return f'Bearer authorization="{authority}", resource="{self.base_url}"'

    def error(self, err: HttpError) -> Response:
        return json_response(err.status, {"error": {"code": err.code, "message": err.message}}, err.headers)

    def unauthorized(self, reason: str) -> Response:
        message = ("AKV10000: Request is missing a Bearer or PoP token." if reason.startswith("no bearer")
                   else f"AKV10022: Invalid audience, issuer or signature: {reason}.")
        return json_response(401, {"error": {"code": "Unauthorized", "message": message}},
                             {"WWW-Authenticate": self.challenge()})

    def authorize(self, request: Request, claims: dict[str, Any]) -> None:
        api_version = request.arg("api-version")
        if api_version is None:
            raise HttpError(400, "BadParameter", "The request is missing the required 'api-version' query parameter.")
        if api_version not in API_VERSIONS:
            raise HttpError(400, "BadParameter", f"The specified version ({api_version}) is not recognized. "
                            f"Consider using the latest supported version ({API_VERSIONS[-1]}).")
        if str(claims.get("tid", "")).lower() != self.tenant:
            raise HttpError(401, "Unauthorized", f"AKV10032: Invalid issuer. Expected one of "
                            f"{self.sandbox.tokens.issuer_for(self.tenant)}, found {claims.get('iss')}.",
                            {"WWW-Authenticate": self.challenge()})
        caller = str(claims.get("appid", "")).lower()
        if self.allowed_clients and caller not in self.allowed_clients:
            raise HttpError(403, "Forbidden", f"Caller is not authorized to perform action on resource. "
                            f"Caller: appid={caller};oid={claims.get('oid')}. Vault: sandbox;location=local. "
                            "Grant the caller the 'Key Vault Secrets User' (read) or 'Key Vault Secrets Officer' "
                            "(write) role.")

    # -- rendering ------------------------------------------------------------------------------

    def _attributes(self, entry: SecretVersion) -> dict[str, Any]:
        return {"enabled": entry.enabled, "created": entry.created, "updated": entry.updated,
                "recoveryLevel": "Recoverable+Purgeable", "recoverableDays": 90}

    def _bundle(self, name: str, entry: SecretVersion) -> dict[str, Any]:
        body: dict[str, Any] = {"value": entry.value, "id": f"{self.base_url}/secrets/{name}/{entry.version}",
                                "attributes": self._attributes(entry), "tags": entry.tags}
        if entry.content_type is not None:
            body["contentType"] = entry.content_type
        return body

    def _item(self, secret_id: str, entry: SecretVersion) -> dict[str, Any]:
        body: dict[str, Any] = {"id": secret_id, "attributes": self._attributes(entry), "tags": entry.tags}
        if entry.content_type is not None:
            body["contentType"] = entry.content_type
        return body

    def _page(self, request: Request, path: str, items: list[dict[str, Any]]) -> Response:
        try:
            skip = int(request.arg("$skiptoken", "0") or 0)
            size = min(int(request.arg("maxresults", str(PAGE_SIZE)) or PAGE_SIZE), PAGE_SIZE)
        except ValueError:
            raise HttpError(400, "BadParameter", "maxresults and $skiptoken must be whole numbers.") from None
        if size < 1:
            raise HttpError(400, "BadParameter", "maxresults must be between 1 and 25.")
        page = items[skip:skip + size]
        next_link = None
        if skip + size < len(items):
            next_link = (f"{self.base_url}{path}?api-version={request.arg('api-version')}"
                         f"&$skiptoken={skip + size}&maxresults={size}")
        return json_response(200, {"value": page, "nextLink": next_link})

    @staticmethod
    def _name(request: Request) -> str:
        name = request.params["name"]
        if not _VALID_NAME.fullmatch(name):
            raise HttpError(400, "BadParameter", f"The secret name '{name}' is invalid: use 1-127 letters, digits "
                            "and dashes.")
        return name

    # -- routes (the versions route comes before the version route) -----------------------------

    @route("GET", r"/secrets/?")
    def list_secrets(self, request: Request) -> Response:
        with self.lock:
            items = [self._item(f"{self.base_url}/secrets/{name}", versions[-1])
                     for name, versions in sorted(self.secrets.items())]
        return self._page(request, "/secrets", items)

    @route("GET", rf"/secrets/{_NAME}/versions/?")
    def list_versions(self, request: Request) -> Response:
        name = self._name(request)
        with self.lock:
            versions = list(self.secrets.get(name.lower(), []))
        if not versions:
            raise _not_found(name)
        items = [self._item(f"{self.base_url}/secrets/{name}/{v.version}", v) for v in versions]
        return self._page(request, f"/secrets/{name}/versions", items)

    @route("GET", rf"/secrets/{_NAME}(/(?P<version>[0-9a-fA-F]*))?")
    def get_secret(self, request: Request) -> Response:
        name = self._name(request)
        version = request.params.get("version") or ""
        with self.lock:
            versions = list(self.secrets.get(name.lower(), []))
        if version:
            match = [v for v in versions if v.version == version.lower()]
            if not match:
                raise _not_found(name, version)
            entry = match[0]
        else:
            if not versions:
                raise _not_found(name)
            entry = versions[-1]
        if not entry.enabled:
            raise HttpError(403, "Forbidden", f"Operation get is not allowed on a disabled secret {name}.")
        return json_response(200, self._bundle(name, entry))

    @route("PUT", rf"/secrets/{_NAME}/?")
    def set_secret(self, request: Request) -> Response:
        name = self._name(request)
        body = request.json()
        if not isinstance(body, dict) or not isinstance(body.get("value"), str):
            raise HttpError(400, "BadParameter", "The request body must be a JSON object with a string 'value'.")
        attributes = body.get("attributes") or {}
        entry = self.put(name, body["value"], content_type=body.get("contentType"), tags=body.get("tags") or {},
                         enabled=bool(attributes.get("enabled", True)))
        return json_response(200, self._bundle(name, entry))

    @route("DELETE", rf"/secrets/{_NAME}/?")
    def delete_secret(self, request: Request) -> Response:
        name = self._name(request)
        with self.lock:
            versions = self.secrets.pop(name.lower(), None)
            if versions is None:
                raise _not_found(name)
            self.deleted[name.lower()] = versions
        return json_response(200, self._deleted_bundle(name, versions[-1]))

    @route("GET", rf"/deletedsecrets/{_NAME}/?")
    def get_deleted_secret(self, request: Request) -> Response:
        name = self._name(request)
        with self.lock:
            versions = self.deleted.get(name.lower())
        if versions is None:
            raise HttpError(404, "SecretNotFound", f"Deleted Secret not found: {name}")
        return json_response(200, self._deleted_bundle(name, versions[-1]))

    def _deleted_bundle(self, name: str, entry: SecretVersion) -> dict[str, Any]:
        body = self._bundle(name, entry)
        body.pop("value", None)
        body.update({"recoveryId": f"{self.base_url}/deletedsecrets/{name}", "deletedDate": int(time.time()),
                     "scheduledPurgeDate": int(time.time()) + 90 * 86400})
        return body
