"""The one root of the project's errors, and what each family means to a caller.

Every error the project raises on purpose derives from ``FraudResponderError``. Three class
attributes say what to do with it, so callers map errors by what they *are*, not by a list of
classes kept somewhere else:

* ``http_status`` and ``error_code``: the admin API's answer (``{"error": error_code, ...}``).
  ``error_code == "internal_error"`` means "a defect or a secret-bearing failure": the API answers
  500 with the type only and logs the details.
* ``retryable``: a later attempt can get past it. The responder leaves the ledger row running and
  the queue delivers the job again; an operator's undo says "try again later".
* ``retry_after``: seconds a client should wait (``Retry-After`` on a 503).

The tree (status, code, retryable)::

    FraudResponderError                       500 internal_error
    ├── SettingsError                         500 misconfigured          (shared.settings)
    ├── MicrosoftApiError                     502 source_refused         (shared.http)
    │   ├── BadRequest, Unauthorized (PartnerCenterMfaRequired), Forbidden, NotFound
    │   ├── Conflict                          502 source_refused   retryable
    │   ├── MalformedResponse                 502 source_refused   retryable
    │   ├── Throttled                         503 unavailable      retryable  (retry_after from the answer)
    │   ├── TransientError                    503 unavailable      retryable
    │   │   └── StillInTransition             503 unavailable      retryable  (shared.clients.arm)
    │   └── OperationFailed, OperationTimedOut                               (shared.clients.arm)
    ├── TokenHealthError                      503 unavailable      retryable  (shared.auth.errors)
    │   └── RefreshTokenExpired, MfaRequired, ConsentRequired, ClientSecretInvalid
    ├── SecretStoreError                      500 internal_error         (shared.auth.secrets)
    │   └── SecretStoreUnavailable            503 unavailable      retryable
    ├── TokenInvalid 401 unauthorized, TokenForbidden 403 forbidden,
    │   KeysUnavailable 503 unavailable retryable                        (shared.auth.operator_tokens)
    ├── StorageError                          503 unavailable      retryable  (shared.storage.errors)
    │   └── StorageUnreachable, StorageAccessDenied, ConcurrencyConflict, BatchWriteError
    ├── LedgerConflict                        409 conflict         retryable  (shared.response.ledger)
    ├── ActionFailed                          502 source_refused         (shared.response.actions.base)
    │   └── NotReversible, ActionNotBuilt
    ├── OperatorError                         409 conflict               (shared.response.engine)
    │   └── ActionNotFound                    404 not_found
    ├── RetryLater                            503 unavailable      retryable  (shared.response.engine)
    ├── OperationError                        500 operation_failed       (shared.operations)
    │   └── InvalidRequest 400, NotFound 404, Conflict 409, SourceRefused 502, Unavailable 503,
    │       DigestNotConfigured 409, DigestNotSent 503
    ├── JsonBodyError                         400 bad_request            (shared.jsonbody)
    ├── WebhookRejected                       400/401/413/... per instance (shared.intake.signature)
    ├── ApiError                              per instance               (shared.admin.api)
    ├── UnsupportedJob                        500 internal_error   retryable  (shared.jobs)
    └── AlertParseError, PolicyError, ContactsError, MessageTooLarge, InvalidJob, SourceSyncFailed,
        CommandFailed, StackAlreadyRunning, UnknownAction, UnknownSource
                                              500 internal_error (defects if they reach the API)

Families that were a ``ValueError`` or ``RuntimeError`` still are (the root is mixed in), so
``except ValueError`` around them keeps working.

To add an error: subclass the family it belongs to (or the root for a new family), set the three
attributes only where they differ from the parent, and add it to the tree above.
"""

from __future__ import annotations

from typing import Final

INTERNAL_ERROR: Final = "internal_error"
"""The ``error_code`` whose message is never shown to an API caller (details only in the log)."""


class FraudResponderError(Exception):
    """Root of the project's errors: carries the HTTP answer and whether retrying can help."""

    http_status: int = 500
    error_code: str = INTERNAL_ERROR
    retryable: bool = False
    retry_after: float = 30.0
    """Seconds a caller should wait before trying again (``Retry-After`` on a 503)."""


def is_retryable(exc: BaseException) -> bool:
    """True when a later attempt can get past ``exc`` (the queue redelivers the job)."""
    return isinstance(exc, FraudResponderError) and exc.retryable


__all__ = ["INTERNAL_ERROR", "FraudResponderError", "is_retryable"]
