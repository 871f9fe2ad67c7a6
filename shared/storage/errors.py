"""Storage errors that say what to do, shared by the table store and the queue helpers.

The Azure SDK's own exceptions carry request details and response bodies; these carry only what
an operator needs (the endpoint without credentials, the table or queue, the keys) and the fix.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

from shared.errors import FraudResponderError

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


class StorageError(FraudResponderError, RuntimeError):
    """A storage operation failed; the message names the resource and what to do."""

    http_status = 503
    error_code = "unavailable"
    retryable = True


class StorageUnreachable(StorageError):
    """The storage endpoint did not answer (connection refused, DNS, timeout)."""


class StorageAccessDenied(StorageError):
    """The storage endpoint refused our credentials."""


def public_endpoint(url: str) -> str:
    """The endpoint as scheme://host/path, without a SAS query or anything else secret."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return f"{parts.scheme}://{netloc}{parts.path}".rstrip("/")


def _hint(endpoint: str) -> str:
    if (urlsplit(endpoint).hostname or "") in LOOPBACK_HOSTS:
        return "is Azurite running? (make run starts it)"
    return "check AzureWebJobsStorage (or AzureWebJobsStorage__accountName) and that this app may reach the account"


@contextmanager
def translated_errors(service: str, url: str) -> Iterator[None]:
    """Turn connection and credential failures into errors that name the endpoint and the fix.

    ``service`` is "Table Storage" or "Queue Storage"; ``url`` is the client's account URL.
    """
    from azure.core.exceptions import ClientAuthenticationError, ServiceRequestError, ServiceResponseError

    try:
        yield
    except (ServiceRequestError, ServiceResponseError) as exc:
        endpoint = public_endpoint(url)
        raise StorageUnreachable(f"cannot reach {service} at {endpoint}: {_hint(endpoint)}") from exc
    except ClientAuthenticationError as exc:
        endpoint = public_endpoint(url)
        code = getattr(exc, "error_code", None) or "authentication failed"
        raise StorageAccessDenied(
            f"{service} at {endpoint} refused the credentials ({code}): check the AzureWebJobsStorage "
            "connection string, or that the app's managed identity holds the Storage Table/Queue Data "
            "Contributor role on the account"
        ) from None
