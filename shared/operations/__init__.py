"""Operator operations shared by the CLI (``fraud-responder``) and the admin HTTP API.

Each module is one operation (resolve an alert, token status, poison queues, the digest). They
take ``Settings`` and a ``TableStore``, return plain JSON-ready dicts, and raise an
``OperationError`` subclass whose message is one line that says what to do next. ``http_status``
and ``error_code`` (from ``shared.errors``) are the admin API's answer; the CLI exits 1 with the message.
"""

from __future__ import annotations

from shared.errors import FraudResponderError


class OperationError(FraudResponderError):
    """The operation could not be done; the message says why and what to do next."""

    error_code = "operation_failed"


class InvalidRequest(OperationError):
    """The caller asked for something malformed (an unknown reason, an empty operator name)."""

    http_status = 400
    error_code = "bad_request"


class NotFound(OperationError):
    """The alert, queue or record named does not exist."""

    http_status = 404
    error_code = "not_found"


class Conflict(OperationError):
    """The thing exists but is in no state for this operation."""

    http_status = 409
    error_code = "conflict"


class SourceRefused(OperationError):
    """Microsoft (Partner Center or Graph) refused the change for good; retrying will not help."""

    http_status = 502
    error_code = "source_refused"


class Unavailable(OperationError):
    """A dependency failed for now (token, throttling, storage, network): try again later."""

    http_status = 503
    error_code = "unavailable"
    retryable = True


__all__ = ["Conflict", "InvalidRequest", "NotFound", "OperationError", "SourceRefused", "Unavailable"]
