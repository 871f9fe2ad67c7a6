"""The admin API's OpenAPI 3.1 document, built from the route table and the read models' field lists.

Served at ``GET /api/manage/openapi.json``; the tests validate every response the API gives against
it. Built in code rather than kept as a JSON file so the alert and action field lists, the ledger
states and the resolve reasons come from the modules that define them and cannot drift.
``python -m shared.admin.openapi`` prints it.
"""

from __future__ import annotations

import copy
import functools
import json
import sys
from typing import Any, Final

from shared import sources
from shared.admin.contract import DEFAULT_LIMIT, MAX_LIMIT, MAX_REASON_CHARS, RESOLVE_REASONS, SINCE_PATTERN
from shared.admin.routes import BY_ID, DECIDE, OPERATIONS, READ
from shared.alerts import STATUSES

OPENAPI_VERSION: Final = "3.1.0"
API_VERSION: Final = "1.0.0"

STRING: Final = {"type": "string"}
TIME: Final = {"type": ["string", "null"], "format": "date-time"}
FREE_OBJECT: Final = {"type": "object"}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _object(properties: dict[str, Any], *, required: list[str] | None = None, open_: bool = True,
            description: str = "") -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties,
                              "required": list(properties) if required is None else required}
    if not open_:
        schema["additionalProperties"] = False
    if description:
        schema["description"] = description
    return schema


def _alert_schema() -> dict[str, Any]:
    from shared.views import ALERT_JSON_FIELDS

    properties: dict[str, Any] = {name: dict(STRING) for name in ALERT_JSON_FIELDS}
    properties.update({
        "source": {"type": "string", "enum": list(sources.names())},
        "is_test": {"type": "boolean", "description": "a Microsoft test alert: only a notification marked as a test"},
        "hit_count": {"type": ["integer", "null"]},
        "detected_at": TIME, "first_observed_at": TIME, "last_observed_at": TIME, "resolved_at": TIME,
        "changed_at": TIME,
        "affected_resources": {"type": "array", "items": _object({"id": STRING, "type": STRING})},
        "version": {"type": "integer", "minimum": 0,
                    "description": "bumped each time the alert changed materially (each change is responded to)"},
        "change_reasons": {"type": "array", "items": STRING},
        "key": {"type": "string", "description": "source:id, unique across sources"},
        "status": {"type": "string", "description": "active, investigating or resolved"},
        "resolved_reason": {"type": "string", "description": "fraud, legitimate or ignore once resolved"},
        "resolved_by": {"type": "string", "description": "who resolved it (operator:NAME or policy:RULE)"},
    })
    return _object(properties, required=list(ALERT_JSON_FIELDS),
                   description="An alert as stored (the same shape as `fraud-responder alerts list --json`); "
                               "fields are only ever added.")


def _action_name() -> dict[str, Any]:
    """An action's name: one of the action catalogue's (``shared.response.catalogue``)."""
    from shared.response import catalogue

    return {"type": "string", "enum": list(catalogue.names())}


def _decision_schema() -> dict[str, Any]:
    from shared.response.decisions import KINDS

    text, maybe = {"type": "string"}, {"type": ["string", "null"]}
    return _object({"alert": text, "decision": {"type": "string", "enum": list(KINDS)},
                    "operator": {**text, "description": "the identity that decided (token or CLI credential)"},
                    "at": maybe, "reason": text, "action_id": text, "action": text, "target": text,
                    "outcome": text})


def _action_schema() -> dict[str, Any]:
    from shared.response.ledger import STATES
    from shared.response.policy import MODES

    text = dict(STRING)
    action = _action_name()
    target = _object({"kind": text, "id": text, "display": text, "tenant": text, "details": FREE_OBJECT})
    properties: dict[str, Any] = {
        "id": {"type": "string", "description": "the action id to approve, reject or undo"},
        "alert": {"type": "string", "description": "the alert's key (source:id)"},
        "customer_tenant_id": text, "subscription_id": text, "action": action, "target": target,
        "mode": {"type": "string", "enum": list(MODES)},
        "state": {"type": "string", "enum": list(STATES)},
        "attempts": {"type": "integer", "minimum": 0},
        "actor": {"type": "string", "description": "policy:RULE, or operator:NAME for operators' decisions"},
        "rule": text, "reason": text, "version": {"type": "integer", "minimum": 0}, "summary": text,
        "already_done": {"type": "boolean"}, "data": FREE_OBJECT, "error": text, "approved_by": text,
        "rejected_by": text, "reject_reason": text, "undone_by": text, "undo_summary": text,
        "undo_data": FREE_OBJECT, "created_at": TIME, "updated_at": TIME,
        "found_state": {"type": "string", "description": "not empty when the target was already in the wanted "
                                                         "state and nothing was done: undo refuses it"},
        "expired_by": text, "expired_reason": text,
    }
    return _object(properties, description="One action-ledger row (alert x action x target), the same shape as "
                                           "`fraud-responder actions list --json`; fields are only ever added.")


def _resolution_schema() -> dict[str, Any]:
    from shared.operations.resolve import REASONS

    text = dict(STRING)
    return _object({
        "alert": _ref("AlertDetail"), "operator": text, "reason": {"type": "string", "enum": list(REASONS)},
        "summary": text, "already_done": {"type": "boolean", "description": "the source already showed it"},
        "sent_status": {"type": "string", "description": "the status written to the source"},
        "sent_reason": {"type": "string", "description": "the reason written (Partner Center takes Fraud or "
                                                         "Ignore: legitimate is sent as Ignore)"},
        "note": text,
        "action_id": {"type": "string", "description": "the ledger row recording this resolution (undo "
                                                       "reopens the alert)"},
        "expired": {"type": "array", "items": dict(STRING),
                    "description": "ids of the containment actions this resolution expired (legitimate, ignore)"},
        "verdict_actions": {"type": "array", "items": dict(STRING),
                            "description": "ids of the actions the policy's fraud verdict planned for the customer "
                                           "([verdict.fraud]; fraud only)"},
        "verdict_deferred": {"type": "array", "items": dict(STRING),
                             "description": "verdict actions a transient error kept from being planned: resolve "
                                            "again to plan them"},
    }, description="Same shape as `fraud-responder alerts resolve --json`.")


def _token_status_schema() -> dict[str, Any]:
    from shared.operations.token_status import EXPIRED, EXPIRING, FAILING, NOT_PERSISTED, OK, UNKNOWN

    text = dict(STRING)
    days = {"type": ["integer", "null"]}
    principal = _object({"principal": text, "ok": {"type": "boolean"}, "checked_at": TIME, "last_ok_at": TIME,
                         "failed_at": TIME, "kind": text, "code": {"type": ["integer", "string", "null"]},
                         "message": text})
    refresh = _object({"secret_name": text, "vault": text, "last_rolled_at": TIME, "expires_if_unused_at": TIME,
                       "days_left": days, "lifetime_days": {"type": "integer"}, "warn_days": {"type": "integer"},
                       "error": text})
    count = {"type": "integer", "minimum": 0}
    app = _object({"application_id": text, "application_name": text, "mfa_compliant_requests": count,
                   "total_requests": count})
    readiness = _object({
        "checked_at": TIME, "read_at": TIME, "window_days": {"type": "integer"},
        "ready": {"type": ["boolean", "null"], "description": "every App+User call of this app in the window "
                                                              "carried MFA; null when unknown"},
        "this_app": app, "applications": {"type": "array", "items": app}, "error": text, "source": text,
    }, description="Partner Center's GET /v1/applicationmfaadoptionstatus, as last read")
    graph = _object({"mode": {"type": "string", "enum": ["app_only", "delegated", "unknown"]}, "reason": text,
                     "since": TIME, "checked_at": TIME},
                    description="which token read Graph partner alerts in the last run (delegated after a 403 "
                                "Unauthorized_MissingMFA to the app-only token)")
    return _object({
        "ok": {"type": "boolean", "description": "false when a token is refused now, the refresh token expired, or "
                                                 "a rolled refresh token could not be written back to Key Vault"},
        "state": {"type": "string", "enum": [OK, EXPIRING, NOT_PERSISTED, EXPIRED, FAILING, UNKNOWN]},
        "checked_at": TIME, "refresh_token": refresh,
        "principals": {"type": "array", "items": principal},
        "last_error": {"oneOf": [{"type": "null"}, principal]},
        "warnings": {"type": "array", "items": text},
        "next_steps": {"type": "array", "items": text, "description": "the exact re-consent (or secret) steps"},
        "expiry_warning": text, "graph_alerts": graph, "mfa_readiness": readiness,
    }, description="Same shape as `fraud-responder token status --json`; never contains a token.")


def _poison_schema() -> dict[str, Any]:
    text = dict(STRING)
    message = _object({"id": text, "dequeue_count": {"type": ["integer", "null"]}, "body": text, "json": {}})
    queue = _object({"queue": text, "poison_queue": text, "count": {"type": "integer", "minimum": 0},
                     "messages": {"type": "array", "items": message}})
    record = _object({"id": text, "queue": text, "at": TIME, "dequeue_count": {"type": ["integer", "null"]},
                      "error_type": text, "error": text, "alert_key": text, "version": {"type": ["integer", "null"]},
                      "replayed_at": TIME, "replayed_by": text})
    return _object({"queues": {"type": "array", "items": queue}, "records": {"type": "array", "items": record}},
                   description="Same shape as `fraud-responder poison list --json`.")


def _digest_schema() -> dict[str, Any]:
    text = dict(STRING)
    count = {"type": "integer", "minimum": 0}
    alert = _object({"id": text, "key": text, "severity": text, "status": text, "subscription_id": text,
                     "subscription_name": text, "detected_at": TIME, "is_test": {"type": "boolean"}})
    group = _object({"customer_tenant_id": text, "customer_name": text, "type": text, "category": text,
                     "count": count, "alerts": {"type": "array", "items": alert}})
    pending = _object({"id": text, "alert": text, "customer_tenant_id": text, "action": _action_name(), "target": text,
                       "mode": text, "reason": text, "waiting_since": TIME, "approve": text, "reject": text})
    failure = _object({"id": text, "alert": text, "customer_tenant_id": text, "action": _action_name(), "target": text,
                       "state": text, "error": text, "at": TIME})
    record = _object({"queue": text, "at": TIME, "alert": text, "dequeue_count": count, "error": text,
                      "replayed_at": TIME, "replayed_by": text})
    return _object({
        "generated_at": TIME, "since": TIME, "window_hours": count, "subject": text,
        "needs_attention": {"type": "boolean"},
        "counts": _object({name: count for name in ("unresolved_alerts", "pending_actions", "failures",
                                                    "sync_errors", "poison_messages")}),
        "unresolved": {"type": "array", "items": group, "description": "unresolved alerts by customer and type"},
        "pending": {"type": "array", "items": pending, "description": "actions waiting for approval"},
        "failures": {"type": "array", "items": failure, "description": "failed actions in the window"},
        "sync_errors": {"type": "array", "items": _object({"trigger": text, "at": TIME, "error": text})},
        "poison": _object({"records": {"type": "array", "items": record},
                           "queues": {"type": "object", "additionalProperties": count}, "error": text}),
        "tokens": {"type": "object", "required": ["ok", "state"],
                   "properties": {"ok": {"type": "boolean"}, "state": text},
                   "description": "token status as GET /manage/tokens gives it (or ok, state and error when it "
                                  "could not be read)"},
        "text": {"type": "string", "description": "the digest as the e-mail's plain text"},
        "expired_approvals": {"type": "array", "items": FREE_OBJECT,
                              "description": "approvals that expired unanswered in the window (APPROVAL_EXPIRY_HOURS)"},
        "quota_hygiene": _object({"read": {"type": "boolean"}, "note": text,
                                  "recommendations": {"type": "array", "items": FREE_OBJECT}},
                                 description="core quotas far above anything used (read only)"),
    }, description="The `fraud-responder digest --json` report plus `text`, the e-mail's body.")


def _incident_schema() -> dict[str, Any]:
    """The incident record's JSON (``shared.operations.incident``): top level and the parts scripts use."""
    from shared.operations.incident import INCIDENT_RECORD_VERSION

    text, maybe = dict(STRING), {"type": ["string", "null"]}
    number = {"type": ["number", "null"]}
    event = _object({"at": maybe, "kind": text, "who": text, "what": text, "mode": text, "result": text,
                     "action_id": text})
    action = {"allOf": [_ref("Action"), _object({"other": {
        "type": "object", "description": "ledger properties this version does not know (written by newer "
                                         "actions), shown as they are"}})]}
    cost_line = _object({"resource_id": text, "size": text, "location": text, "from": maybe, "to": maybe,
                         "running_now": {"type": "boolean"}, "hours": {"type": "number"},
                         "price_per_hour": number, "estimate": number, "note": text})
    cost = _object({
        "kind": {"type": "string", "enum": ["estimate", "measured"]}, "currency": text,
        "total": {"type": "number"}, "complete": {"type": "boolean"},
        "window": _object({"from": maybe, "to": maybe}), "basis": text, "prices_as_of": text,
        "lines": {"type": "array", "items": cost_line}, "spend": {"type": ["object", "null"]}, "spend_note": text,
    }, description="running hours of the affected VMs times a dated list price: an estimate until measured spend "
                   "(issue 14) exists")
    check = _object({"check": text, "met": {"type": ["boolean", "null"]}, "detail": text})
    exception = _object({
        "verdict": {"type": "string", "enum": ["looks eligible", "possibly eligible", "not eligible"]},
        "looks_eligible": {"type": "boolean"}, "checks": {"type": "array", "items": check},
        "missing": {"type": "array", "items": text}, "coverage": _object({"from": maybe, "until": maybe}),
        "earlier_incidents": {"type": "array", "items": FREE_OBJECT}, "policy": FREE_OBJECT,
    }, description="Microsoft's one-time exception for a first compromise: each condition, and what is still "
                   "missing to file the request")
    quota = _object({"read": {"type": "boolean"}, "note": text, "recommendations": {"type": "array",
                                                                                    "items": FREE_OBJECT}})
    return _object({
        "incident_record_version": {"type": "integer", "const": INCIDENT_RECORD_VERSION},
        "generated_at": maybe, "alert": _ref("AlertDetail"), "detection": FREE_OBJECT,
        "actions": {"type": "array", "items": action, "description": "every ledger row, oldest first"},
        "decisions": {"type": "array", "items": _decision_schema()},
        "timeline": {"type": "array", "items": event,
                     "description": "detection, each action planned and finished, each decision, in time order"},
        "affected": _object({"resources": {"type": "array", "items": FREE_OBJECT},
                             "principals": {"type": "array", "items": FREE_OBJECT}}),
        "investigation": _object({"ran": {"type": "boolean"}, "findings": {"type": "array", "items": text}},
                                 required=["ran", "findings"]),
        "cost_estimate": cost, "exception_eligibility": exception, "quota_hygiene": quota,
        "notes": {"type": "array", "items": text},
    }, description="The incident record (`fraud-responder incident export ID --format json`); fields are only "
                   "ever added.")


def _bulk_schema() -> dict[str, Any]:
    outcome = _object({"ok": {"type": "boolean"}, "error": dict(STRING), "action": _ref("Action")})
    return _object({"alert": dict(STRING), "decision": {"type": "string", "enum": ["approve", "reject"]},
                    "results": {"type": "array", "items": outcome,
                                "description": "one per action that awaited approval, each its own ledger record "
                                               "and decision"},
                    "count": {"type": "integer", "minimum": 0}, "failed": {"type": "integer", "minimum": 0}})


def _schemas() -> dict[str, Any]:

    alert_detail = {"allOf": [_ref("Alert"), _object({"description": STRING, "additional_details": FREE_OBJECT})]}
    return {
        "Error": _object({
            "error": {"type": "string", "enum": ["bad_request", "unauthorized", "forbidden", "not_found", "conflict",
                                                 "action_failed",
                                                 "source_refused", "unavailable", "misconfigured",
                                                 "internal_error"]},
            "message": {"type": "string", "description": "one line that says what to do next"},
            "action": _ref("Action"),
        }, required=["error", "message"],
            description="Every error. `action` is the ledger row when an approved or undone action failed."),
        "Alert": _alert_schema(),
        "AlertDetail": alert_detail,
        "Action": _action_schema(),
        "AlertList": _object({"alerts": {"type": "array", "items": _ref("Alert")},
                              "count": {"type": "integer", "minimum": 0},
                              "truncated": {"type": "boolean", "description": "more alerts match than `limit`"}}),
        "AlertWithActions": _object({
            "alert": _ref("AlertDetail"),
            "actions": {"type": "array", "items": _ref("Action"), "description": "what was done, oldest first"},
            "investigation": {"type": ["object", "null"],
                              "description": "who created or changed the affected resources (null before the "
                                             "investigation ran)"},
            "decisions": {"type": "array", "items": _decision_schema(),
                          "description": "every operator decision on this alert (resolve, approve, reject, undo, "
                                         "expire), oldest first; append-only"},
        }),
        "ActionList": _object({"actions": {"type": "array", "items": _ref("Action")},
                               "count": {"type": "integer", "minimum": 0}}),
        "ActionResult": _object({"action": _ref("Action")}),
        "IncidentRecord": _incident_schema(),
        "BulkDecision": _bulk_schema(),
        "Resolution": _resolution_schema(),
        "ResolveRequest": _object({"reason": {"type": "string", "enum": list(RESOLVE_REASONS)}}, open_=False,
                                  description=_NO_OPERATOR),
        "DecisionRequest": _object({}, open_=False, description=_NO_OPERATOR),
        "RejectRequest": _object({"reason": {"type": "string", "maxLength": MAX_REASON_CHARS,
                                             "pattern": r"^[^\u0000-\u001f]*$", "description": "one line of text"}},
                                 required=[], open_=False, description=_NO_OPERATOR),
        "TokenStatus": _token_status_schema(),
        "Digest": _digest_schema(),
        "PoisonReport": _poison_schema(),
        "OpenApiDocument": _object({"openapi": STRING, "info": FREE_OBJECT, "paths": FREE_OBJECT},
                                   description="this document"),
    }


_ERRORS: Final = {
    400: "bad input: an unknown or malformed parameter or field (the message names it)",
    404: "no such alert or action",
    409: "the action is in no state for this decision (the message says which state it is in)",
    500: "a setting is wrong (the message names it) or a defect (details in the app's log)",
    502: "Microsoft refused the call, or the action ran and failed (recorded on the row)",
    503: "storage, a token or a Microsoft API is unavailable for now: retry later (Retry-After)",
}
_NO_OPERATOR: Final = ("Who decides is not a field: the decision is recorded as the identity of the access token "
                       "(a user's upn, or app:<client id> for an application).")
_AUTH_ERRORS: Final = {
    401: "no valid Microsoft Entra ID access token for the app (missing, expired, wrong audience, issuer or "
         "signature); the WWW-Authenticate header names the scope to ask for",
    403: "the token is valid but lacks the app role this operation needs (the message names it)",
}

_PARAMS: Final[dict[str, list[tuple[str, str, dict[str, Any]]]]] = {
    "list_alerts": [
        ("status", "only alerts with this status", {"type": "string", "enum": list(STATUSES)}),
        ("customer", "only this customer tenant id", STRING),
        ("type", "only this alert type (case-insensitive), e.g. cryptoMining", STRING),
        ("since", "changed since: ISO 8601 from 1970-01-01 on (UTC when no offset is given), or an age such as "
                  "30m, 24h, 7d (at most 9999d, 99999h or 9999999m)", {"type": "string", "maxLength": 64,
                                                                       "pattern": SINCE_PATTERN}),
        ("limit", f"at most this many, newest change first (default {DEFAULT_LIMIT})",
         {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}),
    ],
    "export_incident": [
        ("format", "json (default), md (Markdown) or html (a self-contained, printable page)",
         {"type": "string", "enum": ["json", "md", "html"]}),
    ],
    "list_actions": [
        ("pending", "only actions awaiting approval", {"type": "boolean"}),
        ("alert", "only this alert's actions (its id or source:id key)", STRING),
    ],
}

# operation id -> (summary, success schema, request schema or None, error statuses)
_OPERATIONS: Final[dict[str, tuple[str, str, str | None, tuple[int, ...]]]] = {
    "list_alerts": ("List stored alerts, newest change first", "AlertList", None, (400, 500, 503)),
    "get_alert": ("One alert with what was done about it (its actions and the investigation)",
                  "AlertWithActions", None, (400, 404, 500, 503)),
    "resolve_alert": ("Resolve an alert at its source (Partner Center or Graph) as fraud, legitimate or ignore",
                      "Resolution", "ResolveRequest", (400, 404, 500, 502, 503)),
    "export_incident": ("The incident record of an alert: detection, timeline, actions, decisions, affected "
                        "resources and principals, findings, cost estimate and the one-time exception check",
                        "IncidentRecord", None, (400, 404, 500, 503)),
    "approve_alert_actions": ("Approve every action of the alert that awaits approval, each on its own row",
                              "BulkDecision", "DecisionRequest", (400, 404, 409, 500, 503)),
    "reject_alert_actions": ("Reject every action of the alert that awaits approval, each on its own row",
                             "BulkDecision", "RejectRequest", (400, 404, 409, 500, 503)),
    "list_actions": ("List action-ledger rows, oldest first", "ActionList", None, (400, 500, 503)),
    "approve_action": ("Run an action that awaits approval now (or retry a failed one)", "ActionResult",
                       "DecisionRequest", (400, 404, 409, 500, 502, 503)),
    "reject_action": ("Refuse an action that awaits approval", "ActionResult", "RejectRequest",
                      (400, 404, 409, 500, 503)),
    "undo_action": ("Reverse a succeeded action (VMs started again, subscription reactivated, status reopened)",
                    "ActionResult", "DecisionRequest", (400, 404, 409, 500, 502, 503)),
    "get_tokens": ("Token health: when the refresh token was last rolled, when it expires if unused, the last "
                   "error and the re-consent steps", "TokenStatus", None, (400, 500, 503)),
    "get_digest": ("The daily digest: unresolved alerts, actions awaiting approval, failures, poison messages "
                   "and token health", "Digest", None, (400, 500, 503)),
    "list_poison": ("Messages in the poison queues", "PoisonReport", None, (400, 500, 503)),
    "get_openapi": ("This document", "OpenApiDocument", None, ()),
}


def _operation(op_id: str) -> dict[str, Any]:
    op = BY_ID[op_id]
    summary, success, request, errors = _OPERATIONS[op_id]
    parameters: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": STRING,
         "description": "alert id, or source:id" if name == "alert_id" else "the action id from the action list"}
        for name in ("alert_id", "action_id") if f"{{{name}}}" in op.route
    ]
    parameters += [{"name": name, "in": "query", "required": False, "description": text, "schema": schema}
                   for name, text, schema in _PARAMS.get(op_id, [])]
    responses: dict[str, Any] = {"200": {"description": "OK",
                                         "content": {"application/json": {"schema": _ref(success)}}}}
    if op_id == "export_incident":  # the same record as Markdown or HTML (?format=md|html)
        responses["200"]["content"].update({"text/markdown": {"schema": dict(STRING)},
                                            "text/html": {"schema": dict(STRING)}})
    for status in errors:
        responses[str(status)] = {"description": _ERRORS[status],
                                  "content": {"application/json": {"schema": _ref("Error")}}}
    if op.role:
        for status, text in _AUTH_ERRORS.items():
            responses[str(status)] = {"description": text,
                                      "content": {"application/json": {"schema": _ref("Error")}}}
    doc: dict[str, Any] = {"operationId": op_id, "summary": summary, "parameters": parameters,
                           "responses": responses}
    if op.role:
        doc["description"] = f"Needs the app role {op.role}" + (
            f" (or {DECIDE}, which includes reading)." if op.role == READ else ".")
        doc["x-app-role"] = op.role
    else:
        doc["security"] = []  # the document is public: it describes the API and holds no data
    if request:
        doc["requestBody"] = {"required": request == "ResolveRequest",
                              "content": {"application/json": {"schema": _ref(request)}}}
    return doc


@functools.cache
def _document() -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op.id)
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "CSP fraud responder admin API",
            "version": API_VERSION,
            "description": ("Operators' reads and decisions: alerts, what was done about them, approvals, "
                            "resolution, token health, the digest and poison messages. JSON in and out. "
                            "Every route but this document needs a Microsoft Entra ID access token for the app "
                            "(Authorization: Bearer; ask for the scope api://<ADMIN_API_CLIENT_ID>/.default), "
                            f"validated by the app itself, with the app role {READ} to read or {DECIDE} to "
                            "decide (approve, reject, undo, resolve). Decisions are recorded as the token's "
                            "identity. No function key is needed, and none opens it."),
        },
        "servers": [{"url": "/api"}],
        "security": [{"entraId": []}],
        "paths": paths,
        "components": {
            "schemas": _schemas(),
            "securitySchemes": {
                "entraId": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                            "description": "Microsoft Entra ID v2.0 access token whose audience is the app "
                                           f"(ADMIN_API_CLIENT_ID), with the app role {READ} or {DECIDE}"},
            },
        },
    }


def openapi_document() -> dict[str, Any]:
    """The document (a copy: callers may change it)."""
    return copy.deepcopy(_document())


if __name__ == "__main__":
    json.dump(openapi_document(), sys.stdout, indent=2)
    sys.stdout.write("\n")
