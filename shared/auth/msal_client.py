"""Build MSAL confidential clients the same way everywhere: authority, TLS trust, discovery.

``verify`` goes into the HTTP client per request: requests lets REQUESTS_CA_BUNDLE /
CURL_CA_BUNDLE from the environment override a session-wide ``verify`` (so MSAL's own
``verify=`` argument is silently ignored on machines that set them), which would make
TRUSTED_CA_BUNDLE a no-op.

MSAL lets the HTTP client's exceptions through as they are, and turns an authority's 5xx or 429
into its own MsalServiceError or a ValueError (discovery) that say nothing of being transient. A
connection Entra dropped, a timeout, a 5xx or a 429 is raised as ``shared.http.TransientError``
(``Throttled``) instead, so the caller (a queue job) retries it rather than recording a defect; a
TLS trust failure stays as it is (a configuration to fix).
"""

from __future__ import annotations

import functools
from typing import Any

from shared.auth.hosts import is_microsoft_authority
from shared.settings import Settings

TIMEOUT_SECONDS = 30


def http_client(settings: Settings) -> Any:
    """A requests.Session that always verifies TLS with TRUSTED_CA_BUNDLE (or the system store)."""
    import requests

    session = requests.Session()
    send = functools.partial(session.request, verify=settings.tls_verify(), timeout=TIMEOUT_SECONDS)

    def request(method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        from urllib.parse import urlsplit

        from shared.http import Throttled, TransientError

        kwargs.pop("verify", None)  # always ours
        where: dict[str, Any] = {"service": "Microsoft Entra ID", "method": method.upper(), "path": urlsplit(url).path}
        try:
            response = send(method, url, *args, **kwargs)
        except requests.exceptions.SSLError:
            raise
        except requests.RequestException as exc:  # dropped, reset, refused, timed out
            raise TransientError(f"the connection to the sign-in authority failed ({type(exc).__name__})",
                                 **where) from None
        status = response.status_code
        if status == 429:
            raise Throttled("the sign-in authority is throttling (HTTP 429)", status=status,
                            retry_after=_seconds(response.headers.get("Retry-After")), **where)
        if status >= 500:
            raise TransientError(f"the sign-in authority failed (HTTP {status})", status=status, **where)
        return response

    session.request = request  # type: ignore[method-assign,assignment]
    return session


def _seconds(value: str | None) -> float:
    try:
        return max(0.0, float(value or 0))
    except ValueError:  # an HTTP date: the queue's own retry delay will do
        return 0.0


def confidential_client(settings: Settings, *, client_id: str, client_secret: str, tenant: str) -> Any:
    """An msal.ConfidentialClientApplication for ``tenant`` at ENTRA_AUTHORITY_HOST."""
    import msal

    host = settings.entra_authority_host.rstrip("/")
    known = is_microsoft_authority(host)
    return msal.ConfidentialClientApplication(
        client_id,
        client_credential=client_secret,
        authority=f"{host}/{tenant}",
        http_client=http_client(settings),
        # Instance discovery asks login.microsoftonline.com about the host: only for Microsoft's hosts.
        instance_discovery=None if known else False,
        token_cache=msal.TokenCache(),
    )
