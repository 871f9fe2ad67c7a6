"""The one way the app calls Microsoft: an httpx client with a single retry policy and typed errors.

Every Microsoft client (Partner Center, Graph, ARM) is built on :class:`MicrosoftClient`, so
throttling, transient failures, timeouts and error reporting behave the same everywhere:

* 429 and 503 honour ``Retry-After`` (seconds or an HTTP date), capped by the remaining time
  budget; when the wait does not fit, :class:`Throttled` carries ``retry_after`` so a queue job can
  come back later instead of holding a worker.
* 500, 502, 504, timeouts and connection errors back off exponentially with full jitter.
* Attempts (default 5) and total time (default 60 s) are both bounded; every attempt has connect
  and read timeouts.
* Partner Center idempotency headers: ``MS-CorrelationId`` is new per logical call and
  ``MS-RequestId`` is reused when retrying after a timeout or connection error (the request may
  have been applied) and renewed after any response, as the Partner Center headers page says.

Error messages say what to do and never include tokens or request headers.

Imported lazily (httpx stays out of the function app's cold start).
"""

from __future__ import annotations

import email.utils
import functools
import json as jsonlib
import logging
import os
import random
import ssl
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, Self

import httpx

from shared.errors import FraudResponderError
from shared.settings import Settings

logger = logging.getLogger(__name__)

USER_AGENT = "csp-fraud-responder/0.1"
MFA_REQUIRED_CODE = "900421"
"""Partner Center error code for an App+User call whose token lacks the MFA claim."""

_MAX_MESSAGE = 300


# ---------------------------------------------------------------------------------------------
# Errors


class MicrosoftApiError(FraudResponderError):
    """A Microsoft API call failed; carries what support needs (ids) and never a token.

    ``status`` and ``code`` are Microsoft's answer; ``http_status`` and ``error_code`` are ours.
    """

    http_status = 502
    error_code = "source_refused"

    hint: ClassVar[str] = "check the request and the response code in the service's documentation"

    def __init__(
        self,
        message: str,
        *,
        status: int = 0,
        code: str = "",
        request_id: str = "",
        correlation_id: str = "",
        service: str = "",
        method: str = "",
        path: str = "",
    ) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.request_id = request_id
        self.correlation_id = correlation_id
        self.service = service
        self.method = method
        self.path = path
        super().__init__(self._render())

    def _render(self) -> str:
        where = f"{self.service or 'Microsoft'} {self.method} {self.path}".strip()
        status = f"HTTP {self.status}" if self.status else "no response"
        code = f", code {self.code}" if self.code else ""
        ids = f" [correlation id {self.correlation_id}, request id {self.request_id}]" if self.correlation_id else ""
        return f"{where} failed ({status}{code}): {self.message}; {self.hint}{ids}"


class BadRequest(MicrosoftApiError):
    hint = "the request was refused as invalid: fix the input named in the message"


class Unauthorized(MicrosoftApiError):
    hint = ("the access token was refused: check the app registration, its consent and the token's "
            "audience and tenant, then get a new token")


class PartnerCenterMfaRequired(Unauthorized):
    hint = ("Partner Center requires MFA for App+User calls (error 900421): have an Admin Agent sign "
            "in again with MFA through the Secure Application Model consent and store the new "
            "refresh token in Key Vault")


class Forbidden(MicrosoftApiError):
    hint = "the caller lacks a role or permission for this operation: check GDAP roles and API permissions"


class NotFound(MicrosoftApiError):
    hint = "the resource does not exist (or is not visible to this partner): check the ids"


class Conflict(MicrosoftApiError):
    retryable = True
    hint = "the resource changed or is in a state that forbids this: read it again and retry"


class Throttled(MicrosoftApiError):
    """Rate limited beyond the retry budget; ``retry_after`` is when to try again (seconds)."""

    hint = "the service is throttling: retry after the delay (the queue job retries later)"
    http_status = 503
    error_code = "unavailable"
    retryable = True

    def __init__(self, message: str, *, retry_after: float, **kwargs: Any) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kwargs)


class TransientError(MicrosoftApiError):
    """Server errors, timeouts or dropped connections that outlasted the retries."""

    http_status = 503
    error_code = "unavailable"
    retryable = True

    hint = "the service failed transiently and retries ran out: try again later"


class MalformedResponse(MicrosoftApiError):
    """A 2xx whose body is not the JSON the API documents."""

    retryable = True

    hint = "the service answered with a body that is not valid JSON: try again; report it if it persists"


_BY_STATUS: dict[int, type[MicrosoftApiError]] = {
    400: BadRequest, 401: Unauthorized, 403: Forbidden, 404: NotFound, 409: Conflict, 412: Conflict,
}


# ---------------------------------------------------------------------------------------------
# Retry policy


@dataclass(frozen=True)
class RetryPolicy:
    """Bounds for one logical call: attempts, total time, backoff and per-attempt timeouts (seconds)."""

    max_attempts: int = 5
    total_seconds: float = 60.0
    backoff_base: float = 0.5
    backoff_max: float = 10.0
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    throttle_statuses: tuple[int, ...] = (429, 503)
    transient_statuses: tuple[int, ...] = (500, 502, 504)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("RetryPolicy.max_attempts must be at least 1")
        if self.total_seconds <= 0:
            raise ValueError("RetryPolicy.total_seconds must be positive")

    def backoff(self, retry_number: int, rng: Callable[[], float] = random.random) -> float:
        """Full jitter: a uniform delay in [0, min(max, base * 2**(n-1))] before retry n (1-based)."""
        ceiling = min(self.backoff_max, self.backoff_base * 2.0 ** max(retry_number - 1, 0))
        return rng() * ceiling


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date); None if absent/invalid."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = now or datetime.now(UTC)
    return max(0.0, float((when - current).total_seconds()))


# ---------------------------------------------------------------------------------------------
# TLS


def ssl_context(extra_ca_bundle: Path | str | None = None) -> ssl.SSLContext:
    """Default trust (certifi, as httpx uses) plus an optional extra PEM bundle (the sandbox CA).

    One context per bundle (and its size and modification time, so a replaced file is read again),
    shared by every client: loading the trust store costs about 0.7 MB, and detection makes one
    ARM client per customer tenant. A context is safe to share between connections and threads.
    """
    if not extra_ca_bundle:
        return _cached_context("", 0, 0)
    path = str(extra_ca_bundle)
    try:
        stat = os.stat(path)
    except OSError:
        return _load_context(path)  # raises the error that names the file
    return _cached_context(path, stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=8)
def _cached_context(path: str, mtime_ns: int, size: int) -> ssl.SSLContext:
    return _load_context(path)


def _load_context(path: str) -> ssl.SSLContext:
    import certifi

    context = ssl.create_default_context(cafile=certifi.where())
    if path:
        context.load_verify_locations(cafile=path)
    return context


def verify_from_settings(settings: Settings) -> ssl.SSLContext:
    """The ``verify`` value for Microsoft calls: system trust plus TRUSTED_CA_BUNDLE when set."""
    return ssl_context(settings.trusted_ca_bundle)


# ---------------------------------------------------------------------------------------------
# Client


def _new_id() -> str:
    return str(uuid.uuid4())


def _truncate(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 1] + "…"


def error_details(response: httpx.Response) -> tuple[str, str]:
    """(code, message) from any Microsoft error body: Partner Center, its 429, Graph/ARM, or text."""
    try:
        body = response.json()
    except ValueError:
        return "", _truncate(response.text) or response.reason_phrase
    if isinstance(body, dict):
        inner = body.get("error")
        if inner is None:  # Graph's MFA refusal on partner security alerts was reported as {"Error": {"Code": ...}}
            inner = next((v for k, v in body.items() if k.lower() == "error"), None)
        if isinstance(inner, dict):  # Graph, ARM, Key Vault
            lowered = {str(k).lower(): v for k, v in inner.items()}
            return str(lowered.get("code", "")), _truncate(str(lowered.get("message", "")))
        code = body.get("code", body.get("errorCode", ""))
        message = body.get("description") or body.get("message") or body.get("error_description") or ""
        if isinstance(inner, str) and not code:
            code = inner
        return str(code), _truncate(str(message)) or response.reason_phrase
    return "", response.reason_phrase


class ServiceClient:
    """What the typed service clients (Partner Center, Graph, ARM) share: their MicrosoftClient and
    its lifetime, as a context manager."""

    http: MicrosoftClient

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class MicrosoftClient:
    """A synchronous httpx client for one Microsoft API with the shared retry policy.

    ``token`` is called before every attempt (so a refreshed token is picked up on retry);
    ``sleep`` and ``clock`` are injectable so tests can record delays without waiting.
    """

    def __init__(
        self,
        base_url: str,
        *,
        token: Callable[[], str] | None = None,
        verify: ssl.SSLContext | bool = True,
        timeout: httpx.Timeout | None = None,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: Callable[[], float] = random.random,
        user_agent: str = USER_AGENT,
        service: str = "Microsoft API",
        correlation_header: str | None = "MS-CorrelationId",
        request_id_header: str | None = "MS-RequestId",
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.retry = retry or RetryPolicy()
        self.service = service
        self._token = token
        self._sleep = sleep
        self._clock = clock
        self._rng = rng
        self._correlation_header = correlation_header
        self._request_id_header = request_id_header
        self._timeout = timeout or httpx.Timeout(
            connect=self.retry.connect_timeout, read=self.retry.read_timeout,
            write=self.retry.read_timeout, pool=self.retry.connect_timeout,
        )
        self._http = httpx.Client(
            base_url=self.base_url, verify=verify, timeout=self._timeout, transport=transport,
            headers={"User-Agent": user_agent, "Accept": "application/json"}, follow_redirects=False,
        )

    # -- lifecycle ---------------------------------------------------------------------------

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> MicrosoftClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- calls ---------------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        expected: Iterable[int] = (200,),
    ) -> httpx.Response:
        """One logical call with retries; returns the response or raises a MicrosoftApiError subclass."""
        expected_set = frozenset(expected)
        policy = self.retry
        correlation_id = _new_id()
        request_id = _new_id()
        started = self._clock()
        deadline = started + policy.total_seconds
        throttled_before = False
        last_error: MicrosoftApiError | None = None
        context: dict[str, Any] = {"service": self.service, "method": method.upper(), "path": path}

        for attempt in range(1, policy.max_attempts + 1):
            remaining = deadline - self._clock()
            if remaining <= 0:
                break
            send_headers = self._headers(headers, correlation_id, request_id)
            try:
                response = self._http.request(
                    method, path, params=params, json=json, headers=send_headers,
                    timeout=self._attempt_timeout(remaining),
                )
            except httpx.TimeoutException as exc:
                last_error = TransientError(
                    f"timed out ({type(exc).__name__})", request_id=request_id,
                    correlation_id=correlation_id, **context,
                )
                delay = policy.backoff(attempt, self._rng)
                # MS-RequestId is kept: the request may have been applied, so the retry must be
                # recognisable as the same request.
            except httpx.TransportError as exc:
                last_error = TransientError(
                    f"connection failed ({type(exc).__name__})", request_id=request_id,
                    correlation_id=correlation_id, **context,
                )
                delay = policy.backoff(attempt, self._rng)
            else:
                if response.status_code in expected_set:
                    return response
                error = self._error_for(response, correlation_id, request_id, context)
                request_id = _new_id()  # any response resets MS-RequestId
                if response.status_code in policy.throttle_statuses:
                    retry_after = parse_retry_after(response.headers.get("Retry-After"))
                    backoff = policy.backoff(attempt, self._rng)
                    if retry_after is None:
                        delay = backoff
                    elif throttled_before:
                        delay = max(retry_after, backoff)  # Microsoft: back off, still honour Retry-After
                    else:
                        delay = retry_after
                    throttled_before = True
                    if retry_after is not None or response.status_code == 429:
                        error = Throttled(error.message, retry_after=delay, status=error.status, code=error.code,
                                          request_id=error.request_id, correlation_id=correlation_id, **context)
                    else:
                        error = TransientError(error.message, status=error.status, code=error.code,
                                               request_id=error.request_id, correlation_id=correlation_id,
                                               **context)
                elif response.status_code in policy.transient_statuses:
                    error = TransientError(error.message, status=error.status, code=error.code,
                                           request_id=error.request_id, correlation_id=correlation_id, **context)
                    delay = policy.backoff(attempt, self._rng)
                else:
                    raise error
                last_error = error

            if attempt == policy.max_attempts:
                break
            if self._clock() + delay >= deadline:
                if isinstance(last_error, Throttled):
                    last_error.retry_after = delay
                break
            logger.warning(
                "%s %s %s: %s; retry %d of %d in %.2fs (correlation id %s)",
                self.service, method.upper(), path,
                f"HTTP {last_error.status}" if last_error.status else last_error.message,
                attempt, policy.max_attempts - 1, delay, correlation_id,
            )
            self._sleep(delay)

        if last_error is None:
            last_error = TransientError(
                f"the {policy.total_seconds:g} s time budget was spent before an attempt could be made",
                correlation_id=correlation_id, request_id=request_id, **context,
            )
        raise last_error

    def request_json(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        expected: Iterable[int] = (200,),
    ) -> Any:
        """Like :meth:`request`, then parse the body; invalid JSON raises MalformedResponse."""
        response = self.request(method, path, params=params, json=json, headers=headers, expected=expected)
        return self.parse_json(response, method=method, path=path)

    def parse_json(self, response: httpx.Response, *, method: str, path: str) -> Any:
        """The JSON body, or MalformedResponse naming the call (the body itself is not echoed)."""
        try:
            return jsonlib.loads(response.content)
        except ValueError as exc:
            raise MalformedResponse(
                f"the body is not valid JSON ({exc.__class__.__name__} at byte {getattr(exc, 'pos', '?')})",
                status=response.status_code, request_id=self._response_request_id(response, ""),
                correlation_id=response.request.headers.get(self._correlation_header or "", ""),
                service=self.service, method=method.upper(), path=path,
            ) from None

    # -- helpers -------------------------------------------------------------------------------

    def _headers(self, extra: Mapping[str, str] | None, correlation_id: str, request_id: str) -> dict[str, str]:
        headers: dict[str, str] = {}
        if self._correlation_header:
            headers[self._correlation_header] = correlation_id
        if self._request_id_header:
            headers[self._request_id_header] = request_id
        if extra:
            headers.update(extra)
        if self._token is not None:
            headers["Authorization"] = f"Bearer {self._token()}"
        return headers

    def _attempt_timeout(self, remaining: float) -> httpx.Timeout:
        """The configured timeouts, shortened so no attempt outlives the time budget."""
        def cap(value: float | None) -> float:
            return remaining if value is None else min(value, remaining)

        return httpx.Timeout(connect=cap(self._timeout.connect), read=cap(self._timeout.read),
                             write=cap(self._timeout.write), pool=cap(self._timeout.pool))

    def _response_request_id(self, response: httpx.Response, sent: str) -> str:
        for name in ("MS-RequestId", "request-id", "x-ms-request-id", "client-request-id"):
            value = response.headers.get(name)
            if value:
                return str(value)
        return sent

    def _error_for(
        self, response: httpx.Response, correlation_id: str, request_id: str, context: dict[str, Any],
    ) -> MicrosoftApiError:
        code, message = error_details(response)
        kwargs: dict[str, Any] = {
            "status": response.status_code, "code": code, "correlation_id": correlation_id,
            "request_id": self._response_request_id(response, request_id), **context,
        }
        if response.status_code == 401 and code == MFA_REQUIRED_CODE:
            return PartnerCenterMfaRequired(message, **kwargs)
        if 200 <= response.status_code < 300:
            return MicrosoftApiError(f"unexpected success status {response.status_code}", **kwargs)
        cls = _BY_STATUS.get(response.status_code, MicrosoftApiError)
        return cls(message or response.reason_phrase, **kwargs)
