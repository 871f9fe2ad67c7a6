"""Operator operations shared by the CLI (``fraud-responder``) and the admin HTTP API.

Each module is one operation (resolve an alert, token status, poison queues, the digest). They
take ``Settings`` and a ``TableStore``, return plain JSON-ready dicts, and raise an
``OperationError`` subclass whose message is one line that says what to do next. ``status`` and
``code`` tell the admin API which HTTP answer to give; the CLI exits 1 with the message.
"""

from __future__ import annotations

from typing import ClassVar


class OperationError(Exception):
    """The operation could not be done; the message says why and what to do next."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "failed"


class InvalidRequest(OperationError):
    """The caller asked for something malformed (an unknown reason, an empty operator name)."""

    status = 400
    code = "invalid_request"


class NotFound(OperationError):
    """The alert, queue or record named does not exist."""

    status = 404
    code = "not_found"


class Conflict(OperationError):
    """The thing exists but is in no state for this operation."""

    status = 409
    code = "conflict"


class SourceRefused(OperationError):
    """Microsoft (Partner Center or Graph) refused the change for good; retrying will not help."""

    status = 502
    code = "source_refused"


class Unavailable(OperationError):
    """A dependency failed for now (token, throttling, storage, network): try again later."""

    status = 503
    code = "unavailable"


__all__ = ["Conflict", "InvalidRequest", "NotFound", "OperationError", "SourceRefused", "Unavailable"]
