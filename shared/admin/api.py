"""Handlers of the admin API: a request's query, route parameters and JSON body in, status and JSON out.

Plain Python so they run without the Functions host (``functions/admin.py`` adapts
``azure.functions.HttpRequest``). The same reads and decisions as the CLI, through the same code:
``shared.views`` for alerts, the ``Responder`` for the action ledger and ``shared.operations`` for
resolve, token status, poison messages and the digest.

Every operation but the OpenAPI document needs a Microsoft Entra ID access token for the app
(``Authorization: Bearer``), validated here (``shared.auth.operator_tokens``): 401 without a valid
one, 403 without the operation's app role. Decisions are recorded as the token's identity.

Errors are ``{"error": code, "message": one line that says what to do}``: 400 bad input, 404 no such
alert or action, 409 the action is in no state for that decision, 502 Microsoft refused or the
action failed (recorded on the row), 503 a dependency is unavailable for now (storage, tokens,
throttling: retry later), 500 a setting is wrong or a defect (details only in the log). The status
and code come from the error's class (``http_status`` / ``error_code``, see ``shared.errors``). Nothing
secret reaches a response: ledger rows and the operations' reports are log-safe by design, and
unexpected errors are reported by type only.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from shared.admin.base import ApiError, ApiResponse, authenticate
from shared.admin.contract import (
    AGE,
    AGE_UNITS,
    ALERT_STATUSES,
    DEFAULT_LIMIT,
    EARLIEST_SINCE,
    KEY_QUERY_PARAM,
    MAX_LIMIT,
    MAX_REASON_CHARS,
    RESOLVE_REASONS,
)
from shared.admin.routes import BY_ID
from shared.errors import INTERNAL_ERROR, FraudResponderError

if TYPE_CHECKING:
    from shared.auth.operator_tokens import Caller
    from shared.response.engine import Responder
    from shared.response.ledger import LedgerEntry
    from shared.settings import Settings
    from shared.storage.tables import TableStore

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class AdminRequest:
    """What a handler reads from an HTTP request."""

    params: Mapping[str, str] = field(default_factory=dict)
    route_params: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    caller: Caller | None = None
    """Who the access token proves the caller is (set by ``handle`` before a handler runs)."""

    @property
    def operator(self) -> str:
        """The identity recorded for a decision: the token's, never a name from the body."""
        if self.caller is None:
            raise RuntimeError("the request was not authenticated")
        return self.caller.identity


def bad_request(message: str) -> ApiError:
    return ApiError(400, "bad_request", message)


# --- what handlers work on -------------------------------------------------------------------------


@dataclass(frozen=True)
class Services:
    """Settings and the stores built from them; one per process and settings (clients stay warm)."""

    settings: Settings
    store: TableStore
    responder: Responder


@functools.lru_cache(maxsize=4)
def services_for(settings: Settings) -> Services:
    from shared.factory import table_store
    from shared.response.engine import Responder

    store = table_store(settings)
    return Services(settings, store, Responder(settings, store))


def _default_services() -> Services:
    from shared.settings import get_settings

    return services_for(get_settings())


# --- request parsing -------------------------------------------------------------------------------


def _query(request: AdminRequest, allowed: tuple[str, ...]) -> dict[str, str]:
    """The query parameters, refusing unknown ones (a misspelt filter must not silently match everything)."""
    unknown = sorted(k for k in request.params if k not in allowed and k != KEY_QUERY_PARAM)
    if unknown:
        valid = ", ".join(allowed) if allowed else "none"
        raise bad_request(f"unknown query parameter {unknown[0]!r}; valid ones: {valid}")
    return {k: v.strip() for k, v in request.params.items() if k in allowed and v.strip()}


def _json_body(request: AdminRequest, allowed: tuple[str, ...]) -> dict[str, Any]:
    from shared.jsonbody import JsonBodyError, parse_json_body

    if not request.body.strip():
        return {}
    try:
        document = parse_json_body(request.body)
    except JsonBodyError as exc:
        raise bad_request(f'{exc}; send a JSON object such as {{"reason": "fraud"}}') from None
    if not isinstance(document, dict):
        raise bad_request('the body must be a JSON object such as {"reason": "fraud"}')
    unknown = sorted(k for k in document if k not in allowed)
    if unknown:
        raise bad_request(f"unknown field {unknown[0]!r}; this operation takes {', '.join(allowed)}")
    return document


def _text_field(body: Mapping[str, Any], name: str, *, required: bool, limit: int) -> str:
    value = body.get(name, "")
    if not isinstance(value, str):
        raise bad_request(f"{name} must be a string")
    value = value.strip()
    if required and not value:
        raise bad_request(f"{name} is required")
    if len(value) > limit:
        raise bad_request(f"{name} is longer than {limit} characters")
    if any(ord(c) < 32 for c in value):
        raise bad_request(f"{name} must be one line of printable text")
    return value


def _no_operator_field(body: Mapping[str, Any]) -> None:
    """Who decides is the access token's identity; a typed name is refused rather than silently dropped."""
    if "operator" in body:
        raise bad_request("operator is not accepted: the decision is recorded as the identity of your access "
                          "token; remove the field")


def parse_since(text: str, *, now: datetime | None = None) -> datetime:
    """An ISO 8601 time (UTC when no offset is given), or an age such as ``30m``, ``24h``, ``7d``.

    Bounded (400 otherwise) so no later date arithmetic can overflow: from EARLIEST_SINCE on, ages
    of at most 4 digits of days, 5 of hours or 7 of minutes (SINCE_PATTERN states it in OpenAPI).
    """
    shown = text[:40]
    found = AGE.match(text)
    try:
        if found:
            amount, unit = next((int(found.group(i)), found.group(i + 1)) for i in (1, 3, 5) if found.group(i))
            value = (now or datetime.now(UTC)) - timedelta(**{AGE_UNITS[unit]: amount})
        else:
            if re.fullmatch(r"[0-9]+[mhd]", text):
                raise bad_request(f"since={shown!r} is too long an age: at most 9999d, 99999h or 9999999m")
            parsed = datetime.fromisoformat(text)
            value = (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)
    except ValueError:
        raise bad_request(f"since={shown!r} is not a time: use ISO 8601 (2024-05-01T08:00:00Z) or an age like "
                          "30m, 24h or 7d") from None
    except OverflowError:
        raise bad_request(f"since={shown!r} is out of range: use a time from {EARLIEST_SINCE:%Y-%m-%d} on") from None
    if value < EARLIEST_SINCE:
        raise bad_request(f"since={shown!r} is before {EARLIEST_SINCE:%Y-%m-%d}: use a later time or a shorter age")
    return value


def _route_param(request: AdminRequest, name: str) -> str:
    value = str(request.route_params.get(name, "")).strip()
    if not value:
        raise bad_request(f"{name} is missing from the path")
    return value


# --- alerts ----------------------------------------------------------------------------------------


def list_alerts(services: Services, request: AdminRequest) -> ApiResponse:
    from shared.views import alert_json, query_alerts

    query = _query(request, ("status", "customer", "type", "since", "limit"))
    status = query.get("status", "").lower() or None
    if status is not None and status not in ALERT_STATUSES:
        raise bad_request(f"status={status!r} is not a status; use one of {', '.join(ALERT_STATUSES)}")
    since = parse_since(query["since"]) if "since" in query else None
    limit = DEFAULT_LIMIT
    if "limit" in query:
        if not re.fullmatch(r"[0-9]{1,4}", query["limit"]) or not 1 <= int(query["limit"]) <= MAX_LIMIT:
            raise bad_request(f"limit must be a whole number from 1 to {MAX_LIMIT}")
        limit = int(query["limit"])
    rows = [alert_json(e) for e in query_alerts(services.store, status=status, customer=query.get("customer"),
                                                alert_type=query.get("type"), since=since)]
    rows.sort(key=lambda a: (a["changed_at"] or "", a["key"]), reverse=True)
    return ApiResponse(200, {"alerts": rows[:limit], "count": min(len(rows), limit), "truncated": len(rows) > limit})


def _stored_alert(services: Services, alert_id: str) -> dict[str, Any]:
    from shared.views import find_alert

    entity = find_alert(services.store, alert_id)
    if entity is None:
        raise ApiError(404, "not_found", f"no alert {alert_id!r}; list them with GET /api/manage/alerts")
    return entity


def get_alert(services: Services, request: AdminRequest) -> ApiResponse:
    from shared.alerts import from_entity
    from shared.response import decisions
    from shared.response.investigation import load_investigation
    from shared.views import alert_json

    _query(request, ())
    entity = _stored_alert(services, _route_param(request, "alert_id"))
    alert = alert_json(entity, detail=True)
    actions = [row.as_json() for row in services.responder.list_actions(alert=alert["key"])]
    investigation = load_investigation(services.store, from_entity(entity))
    made = [d.as_json() for d in decisions.for_alert(services.store, alert["key"])]
    return ApiResponse(200, {"alert": alert, "actions": actions, "investigation": investigation, "decisions": made})


def resolve_alert(services: Services, request: AdminRequest) -> ApiResponse:
    from shared.operations.resolve import resolve

    _query(request, ())
    alert_id = _route_param(request, "alert_id")
    body = _json_body(request, ("reason", "operator"))
    _no_operator_field(body)
    reason = _text_field(body, "reason", required=True, limit=20).lower()
    if reason not in RESOLVE_REASONS:
        raise bad_request(f"reason={reason!r} is not a resolution; use one of {', '.join(RESOLVE_REASONS)}")
    operator = request.operator
    entity = _stored_alert(services, alert_id)
    key = f"{entity.get('source', '')}:{entity.get('alert_id', '')}"
    return ApiResponse(200, resolve(services.settings, services.store, key, reason, operator))


INCIDENT_MEDIA_TYPES: Final = {"json": "application/json", "md": "text/markdown", "html": "text/html"}


def export_incident(services: Services, request: AdminRequest) -> ApiResponse:
    """The incident record (``shared.operations.incident``) as JSON (default), Markdown or HTML."""
    from shared.operations.incident import build_incident, live_vm_lookup, render
    from shared.operations.quota import live_reader

    query = _query(request, ("format",))
    fmt = query.get("format", "json").lower()
    if fmt not in INCIDENT_MEDIA_TYPES:
        raise bad_request(f"format={fmt[:20]!r} is not a format; use one of {', '.join(INCIDENT_MEDIA_TYPES)}")
    entity = _stored_alert(services, _route_param(request, "alert_id"))
    key = f"{entity.get('source', '')}:{entity.get('alert_id', '')}"
    lookup = live_vm_lookup(services.settings, services.store, str(entity.get("customer_tenant_id", "")))
    record = build_incident(services.store, key, vm_lookup=lookup, quota_reader=live_reader(services.settings))
    if fmt == "json":
        return ApiResponse(200, record.as_json())
    filename = f"incident-{re.sub(r'[^A-Za-z0-9_.-]', '_', str(entity.get('alert_id', '')))[:80]}.{fmt}"
    return ApiResponse(200, render(record, fmt), media_type=INCIDENT_MEDIA_TYPES[fmt],
                       headers={"Content-Disposition": f'inline; filename="{filename}"',
                                "X-Content-Type-Options": "nosniff"})


def _decide_alert(services: Services, request: AdminRequest, decision: str) -> ApiResponse:
    """Every action of one alert that awaits approval, each decided on its own row (200 even if some did not)."""
    from shared.response.engine import ActionNotFound, OperatorError

    _query(request, ())
    body = _json_body(request, ("operator", "reason") if decision == "reject" else ("operator",))
    _no_operator_field(body)
    reason = _text_field(body, "reason", required=False, limit=MAX_REASON_CHARS) if decision == "reject" else ""
    entity = _stored_alert(services, _route_param(request, "alert_id"))
    key = f"{entity.get('source', '')}:{entity.get('alert_id', '')}"
    try:
        outcomes = services.responder.decide_all(key, decision, request.operator, reason)
    except ActionNotFound:
        outcomes = []
    except OperatorError as exc:
        raise ApiError(409, "conflict", str(exc)) from None
    results = [o.as_json() for o in outcomes]
    return ApiResponse(200, {"alert": key, "decision": decision, "results": results, "count": len(results),
                             "failed": sum(1 for o in outcomes if not o.ok)})


def approve_alert_actions(services: Services, request: AdminRequest) -> ApiResponse:
    return _decide_alert(services, request, "approve")


def reject_alert_actions(services: Services, request: AdminRequest) -> ApiResponse:
    return _decide_alert(services, request, "reject")


# --- the action ledger -----------------------------------------------------------------------------


def list_actions(services: Services, request: AdminRequest) -> ApiResponse:
    query = _query(request, ("pending", "alert"))
    pending = query.get("pending", "false").lower()
    if pending not in ("true", "false"):
        raise bad_request("pending must be true or false")
    rows = services.responder.list_actions(pending_only=pending == "true", alert=query.get("alert"))
    return ApiResponse(200, {"actions": [r.as_json() for r in rows], "count": len(rows)})


def _decided(entry: LedgerEntry, failed_states: tuple[str, ...], verb: str) -> ApiResponse:
    """200 with the row; 502 with the row when the action ran and failed (the row records why)."""
    if entry.state in failed_states:
        raise ApiError(502, "action_failed", f"action {entry.action_id} ({entry.action} on "
                       f"{entry.target.display or entry.target.id}) failed: {entry.error}; fix the cause, then "
                       f"{verb} it again", extra={"action": entry.as_json()})
    return ApiResponse(200, {"action": entry.as_json()})


def _decide(services: Services, request: AdminRequest, decision: str) -> ApiResponse:
    from shared.response.engine import ActionNotFound, OperatorError
    from shared.response.ledger import FAILED, UNDO_FAILED

    _query(request, ())
    action_id = _route_param(request, "action_id")
    body = _json_body(request, ("operator", "reason") if decision == "reject" else ("operator",))
    _no_operator_field(body)
    operator = request.operator
    responder = services.responder
    try:
        if decision == "approve":
            return _decided(responder.approve(action_id, operator), (FAILED,), "approve")
        if decision == "reject":
            reason = _text_field(body, "reason", required=False, limit=MAX_REASON_CHARS)
            return _decided(responder.reject(action_id, operator, reason), (), "reject")
        return _decided(responder.undo(action_id, operator), (UNDO_FAILED,), "undo")
    except ActionNotFound as exc:
        raise ApiError(404, "not_found", f"no action {action_id!r}; list them with GET /api/manage/actions"
                       ) from exc
    except OperatorError as exc:
        raise ApiError(409, "conflict", str(exc)) from None


def approve_action(services: Services, request: AdminRequest) -> ApiResponse:
    return _decide(services, request, "approve")


def reject_action(services: Services, request: AdminRequest) -> ApiResponse:
    return _decide(services, request, "reject")


def undo_action(services: Services, request: AdminRequest) -> ApiResponse:
    return _decide(services, request, "undo")


# --- reports ---------------------------------------------------------------------------------------


def get_tokens(services: Services, request: AdminRequest) -> ApiResponse:
    from shared.operations.token_status import token_status

    _query(request, ())
    return ApiResponse(200, token_status(services.settings, services.store))


def get_digest(services: Services, request: AdminRequest) -> ApiResponse:
    from shared.operations.digest import build_digest

    _query(request, ())
    digest = build_digest(services.settings, services.store, read_quota=True)
    return ApiResponse(200, {**digest.as_dict(), "text": digest.as_text()})


def list_poison(services: Services, request: AdminRequest) -> ApiResponse:
    from shared.operations.poison import list_poison as poison_report

    _query(request, ())
    return ApiResponse(200, poison_report(services.settings, services.store))


def get_openapi(request: AdminRequest) -> ApiResponse:
    from shared.admin.openapi import openapi_document

    return ApiResponse(200, openapi_document())


Handler = Callable[[Services, AdminRequest], ApiResponse]

HANDLERS: Final[dict[str, Handler]] = {
    "list_alerts": list_alerts, "get_alert": get_alert, "resolve_alert": resolve_alert,
    "export_incident": export_incident, "approve_alert_actions": approve_alert_actions,
    "reject_alert_actions": reject_alert_actions,
    "list_actions": list_actions, "approve_action": approve_action, "reject_action": reject_action,
    "undo_action": undo_action, "get_tokens": get_tokens, "get_digest": get_digest, "list_poison": list_poison,
}


# --- dispatch and error mapping --------------------------------------------------------------------


def handle(operation: str, request: AdminRequest, *, services: Services | None = None) -> ApiResponse:
    """Run ``operation`` (an id from ``shared.admin.routes``); every outcome is a documented response.

    The caller is authenticated first (401 / 403 before any input is read or any storage touched).
    """
    if operation not in BY_ID:
        raise KeyError(f"no admin operation {operation!r}")
    try:
        if not BY_ID[operation].role:
            return get_openapi(request)
        services = services or _default_services()
        caller = authenticate(services.settings, request.headers, BY_ID[operation].role)
        return HANDLERS[operation](services, replace(request, caller=caller))
    except ApiError as exc:
        return exc.response()
    except Exception as exc:
        return _error_response(operation, exc).response()


def _error_response(operation: str, exc: Exception) -> ApiError:
    """The answer an error asks for by its class (``shared.errors``): status, code, one-line message.

    Anything that is not a project error, or whose code is ``internal_error``, is a defect or may carry
    something secret: 500 with the type only, the details in the log.
    """
    from shared.formats import one_line

    if not isinstance(exc, FraudResponderError) or exc.error_code == INTERNAL_ERROR:
        log.exception("admin %s failed unexpectedly", operation)
        return ApiError(500, INTERNAL_ERROR, f"{operation} failed with {type(exc).__name__}; the details are in "
                                             "the function app's log (Application Insights traces)")
    message = one_line(str(exc))
    if exc.http_status >= 500:
        log.log(logging.ERROR if exc.http_status == 500 else logging.WARNING, "admin %s: %s: %s", operation,
                exc.error_code, message)
    headers = {"Retry-After": str(max(1, round(exc.retry_after)))} if exc.http_status == 503 else None
    return ApiError(exc.http_status, exc.error_code, message, headers=headers)
