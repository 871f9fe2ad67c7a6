"""One error root: every project error derives from it, and its attributes decide the admin API's
answer and whether the responder retries (no isinstance ladder, no list of retryable classes)."""

from __future__ import annotations

import ast
import importlib
import logging
from pathlib import Path

import pytest

from shared.admin.api import _error_response
from shared.auth.errors import ConsentRequired, RefreshTokenExpired, TokenHealthError
from shared.clients.arm import OperationFailed, OperationTimedOut
from shared.errors import FraudResponderError, is_retryable
from shared.http import BadRequest, Conflict, Forbidden, MalformedResponse, NotFound, Throttled, TransientError
from shared.operations import InvalidRequest, Unavailable
from shared.operations.digest import DigestNotConfigured, DigestNotSent
from shared.response.actions.base import ActionFailed, NotReversible
from shared.response.engine import ActionNotFound, OperatorError
from shared.response.ledger import LedgerConflict
from shared.settings import SettingsError
from shared.storage.errors import StorageError, StorageUnreachable
from shared.storage.tables import ConcurrencyConflict

ROOT = Path(__file__).resolve().parent.parent
INTERNAL = ("_Deferred",)
"""Control flow inside one module, never raised past it."""


def _project_exceptions() -> list[type[BaseException]]:
    """Every exception class defined in a module under shared/ (found with ast, then imported)."""
    found: list[type[BaseException]] = []
    for path in sorted((ROOT / "shared").rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names = [n.name for n in ast.parse(path.read_text(encoding="utf-8")).body if isinstance(n, ast.ClassDef)]
        if not names:
            continue
        module = importlib.import_module(".".join(parts))
        for name in names:
            value = getattr(module, name)
            if isinstance(value, type) and issubclass(value, BaseException) and name not in INTERNAL:
                found.append(value)
    return found


def test_every_project_error_derives_from_the_one_root() -> None:
    errors = _project_exceptions()
    assert len(errors) > 40
    strays = [f"{e.__module__}.{e.__qualname__}" for e in errors if not issubclass(e, FraudResponderError)]
    assert strays == []


def test_families_that_were_value_errors_still_are() -> None:
    from shared.alerts import AlertParseError
    from shared.jsonbody import JsonBodyError
    from shared.response.policy import PolicyError

    for family in (SettingsError, JsonBodyError, AlertParseError, PolicyError):
        assert issubclass(family, ValueError)
    assert issubclass(StorageError, RuntimeError)


def _ms(cls: type, **kwargs: object) -> BaseException:
    return cls("the service said no", status=400, service="Graph", method="GET", path="/x", **kwargs)  # type: ignore[no-any-return]


@pytest.mark.parametrize(("error", "status", "code", "retry_after"), [
    (_ms(Throttled, retry_after=7.4), 503, "unavailable", "7"),
    (_ms(Throttled, retry_after=0.1), 503, "unavailable", "1"),
    (_ms(TransientError), 503, "unavailable", "30"),
    (StorageUnreachable("storage at http://127.0.0.1 did not answer"), 503, "unavailable", "30"),
    (RefreshTokenExpired(700082, tenant="t", resource="r"), 503, "unavailable", "30"),
    (LedgerConflict("the row changed"), 409, "conflict", None),
    (OperatorError("only succeeded actions can be undone"), 409, "conflict", None),
    (ActionFailed("the plan is gone"), 502, "source_refused", None),
    (_ms(BadRequest), 502, "source_refused", None),
    (_ms(Conflict), 502, "source_refused", None),
    (_ms(MalformedResponse), 502, "source_refused", None),
    (SettingsError("ADMIN_API_CLIENT_ID is not set"), 500, "misconfigured", None),
    (InvalidRequest("reason must be one of ..."), 400, "bad_request", None),
    (DigestNotConfigured("set NOTIFY_SENDER"), 409, "conflict", None),
    (DigestNotSent("Graph refused the e-mail"), 503, "unavailable", "30"),
])
def test_the_admin_api_answers_each_family_by_its_attributes(error: Exception, status: int, code: str,
                                                             retry_after: str | None) -> None:
    answer = _error_response("op", error).response()
    assert (answer.status, answer.document["error"]) == (status, code)
    assert answer.document["message"] == " ".join(str(error).split())
    assert answer.headers.get("Retry-After") == retry_after


def test_a_defect_or_an_internal_error_is_answered_by_its_type_only(caplog: pytest.LogCaptureFixture) -> None:
    from shared.alerts import AlertParseError

    for error in (KeyError("sk-secret-value"), AlertParseError("a row with sk-secret-value in it")):
        with caplog.at_level(logging.ERROR):
            answer = _error_response("get_alert", error).response()
        assert (answer.status, answer.document["error"]) == (500, "internal_error")
        assert "sk-secret-value" not in answer.body().decode()
        assert type(error).__name__ in answer.document["message"]


def test_a_new_error_family_is_answered_without_editing_the_api() -> None:
    class QuotaExhausted(FraudResponderError):
        http_status = 429
        error_code = "quota_exhausted"

    answer = _error_response("op", QuotaExhausted("the daily quota is used up; try tomorrow")).response()
    assert (answer.status, answer.document) == (429, {"error": "quota_exhausted",
                                                      "message": "the daily quota is used up; try tomorrow"})


def test_retryable_is_the_set_the_responder_always_retried() -> None:
    retried = [_ms(Throttled, retry_after=1), _ms(TransientError), _ms(Conflict), _ms(MalformedResponse),
               ConsentRequired(65001, tenant="t", resource="r"), TokenHealthError(0, tenant="t", resource="r"),
               StorageError("x"), ConcurrencyConflict("alerts", "p", "r", "changed"), LedgerConflict("x"),
               Unavailable("x")]
    permanent = [_ms(BadRequest), _ms(Forbidden), _ms(NotFound), _ms(OperationFailed),
                 _ms(OperationTimedOut, operation_url="https://management.azure.com/op"),
                 ActionFailed("x"), NotReversible("x"), OperatorError("x"), ActionNotFound("x"), SettingsError("x"),
                 ValueError("x"), RuntimeError("x")]
    assert [type(e).__name__ for e in retried if not is_retryable(e)] == []
    assert [type(e).__name__ for e in permanent if is_retryable(e)] == []
