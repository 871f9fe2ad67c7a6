"""What the admin API and the health endpoint share: the answer, the error that ends a request, and
who the caller is (the Entra ID access token, with its challenge when refused).

Below ``shared.admin.api`` so ``shared.health`` can check a token without importing the handlers
(and through them the responder): no import cycle (tests/test_import_cycles.py).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shared.errors import FraudResponderError

if TYPE_CHECKING:
    from shared.auth.operator_tokens import Caller
    from shared.settings import Settings

log = logging.getLogger("shared.admin.api")


@dataclass(frozen=True)
class ApiResponse:
    status: int
    document: Any
    headers: Mapping[str, str] = field(default_factory=dict)
    media_type: str = "application/json"
    """Not JSON only for the incident record's Markdown and HTML, where ``document`` is the text itself."""

    def body(self) -> bytes:
        if self.media_type != "application/json":
            return str(self.document).encode("utf-8")
        return json.dumps(self.document, default=str).encode("utf-8")


class ApiError(FraudResponderError):
    """Ends a request with ``status`` and ``{"error", "message", **extra}``."""

    def __init__(self, status: int, error: str, message: str, *, extra: Mapping[str, Any] | None = None,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = self.http_status = status
        self.error = self.error_code = error
        self.message = message
        self.extra = dict(extra or {})
        self.headers = dict(headers or {})

    def response(self) -> ApiResponse:
        return ApiResponse(self.status, {"error": self.error, "message": self.message, **self.extra}, self.headers)


def challenge(settings: Settings | None, error: str, description: str) -> dict[str, str]:
    """A ``WWW-Authenticate: Bearer`` challenge (RFC 6750) naming the scope to ask Entra for."""
    scope = f"api://{settings.admin_api_client_id}/.default" if settings and settings.admin_api_client_id else ""
    quoted = description.replace("\\", "").replace('"', "'")
    parts = ['Bearer realm="fraud-responder"']
    if scope:
        parts.append(f'scope="{scope}"')
    if error:  # RFC 6750 3.1: a request that sent no token gets the bare challenge
        parts += [f'error="{error}"', f'error_description="{quoted}"']
    return {"WWW-Authenticate": ", ".join(parts)}


def authenticate(settings: Settings, headers: Mapping[str, str], role: str) -> Caller:
    """The caller proven by the request's access token; ApiError 401 / 403 / 503 when there is none."""
    from shared.auth.operator_tokens import KeysUnavailable, TokenForbidden, TokenInvalid, bearer_token
    from shared.auth.operator_tokens import authenticate as validate

    try:
        return validate(settings, headers, role)
    except TokenInvalid as exc:
        raise ApiError(401, "unauthorized", f"{exc}; ask Microsoft Entra ID for a token with the scope "
                       f"api://{settings.admin_api_client_id}/.default",
                       headers=challenge(settings, "invalid_token" if bearer_token(headers) else "", str(exc))
                       ) from None
    except TokenForbidden as exc:
        raise ApiError(403, "forbidden", str(exc),
                       headers=challenge(settings, "insufficient_scope", f"needs the app role {role}")) from None
    except KeysUnavailable as exc:
        log.warning("admin: cannot check access tokens: %s", exc)
        raise ApiError(503, "unavailable", f"access tokens cannot be checked now: {exc}",
                       headers={"Retry-After": "30"}) from None


__all__ = ["ApiError", "ApiResponse", "authenticate", "challenge"]
