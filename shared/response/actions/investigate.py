"""investigate: who created or changed the affected resources, and what else they did.

Reads the subscription's Azure Monitor activity log (ARM, customer tenant) from ``LOOKBACK`` before
the alert's first observation (or detection, whichever is earlier) until now, all pages. Events
whose resource is an affected resource (or a child of one: extensions, disks attached under the
VM), compared case-insensitively, and whose operation is a write, delete or action, name the
implicated principals; every other event by those principals in the window is "what else they
did". Each principal's events are grouped by operation (an ARM request logs a Started and a
Succeeded event with one correlation id; the final status is kept).

Callers, as Azure Monitor records them: a user's ``caller`` is the UPN and the ``oid`` claim its
object id; a service principal's ``caller`` is its object id (older events: its app id) and the
``appid`` claim its application (client) id. Events of the partner's own people, acting through
GDAP, carry the partner tenant as identity provider and are left out: they are us, not the
attacker. Names are looked up in the customer's directory (Graph) when it answers.

The role assignments the implicated principals created in the window (``roleAssignments/write``
events whose final status is not failed) are listed apart, under ``role_assignments``, for
remove_role_assignments.

The document is stored in the alerts table beside the alert (RowKey ``investigation~<alert row>``,
kind ``investigation``, property ``document``) and is what later actions (revoke_sessions,
rotate_credentials, remove_role_assignments) and the notification read through ``ActionContext.investigation``; see
:func:`load_investigation`.

Re-running is harmless but pointless while the alert's affected resources are unchanged: verify
says done when the stored investigation covers them, so a redelivered job does not read the log
again; an alert version naming new resources is investigated afresh (the row is replaced). Not
reversible: it changes nothing anywhere, and the evidence is kept.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from shared.alerts import Alert, row_key
from shared.names import ALERTS_TABLE
from shared.response.actions._errors import permanent_errors
from shared.response.actions.base import ActionContext, ActionFailed, NotReversible, Outcome, Target
from shared.response.investigation import investigation_row, load_investigation

if TYPE_CHECKING:
    from shared.clients.arm import ActivityLogEvent
    from shared.clients.graph import GraphClient

logger = logging.getLogger(__name__)

LOOKBACK = dt.timedelta(hours=24)
"""How far before the first observation the log is read (attackers prepare: roles, networks)."""
MAX_LOOKBACK = dt.timedelta(days=89)
"""Azure Monitor keeps 90 days and refuses a window starting earlier."""
MAX_OPERATIONS_PER_PRINCIPAL = 100
MAX_DOCUMENT_CHARS = 30_000
"""Table Storage caps a string property at 64 KiB (32K UTF-16 characters)."""
CHANGE_VERBS = ("/write", "/delete", "/action")
_OID = "http://schemas.microsoft.com/identity/claims/objectidentifier"
_UPN = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn"
_IDP = "http://schemas.microsoft.com/identity/claims/identityprovider"


def window(alert: Alert, now: dt.datetime, lookback: dt.timedelta = LOOKBACK) -> tuple[dt.datetime, dt.datetime]:
    """The activity-log window: ``lookback`` before the earliest sign of the alert, until now."""
    seen = [t for t in (alert.first_observed_at, alert.detected_at) if t is not None]
    start = min(seen, default=now) - lookback
    start = max(start, now - MAX_LOOKBACK)
    return min(start, now - dt.timedelta(minutes=1)), now


def _is_change(operation: str) -> bool:
    return operation.lower().endswith(CHANGE_VERBS)


def _touches(resource_id: str, affected: Iterable[str]) -> str | None:
    """The affected resource this event's resource is (or is under), compared case-insensitively."""
    rid = resource_id.lower().rstrip("/")
    for candidate in affected:
        base = candidate.lower().rstrip("/")
        if rid == base or rid.startswith(base + "/"):
            return candidate
    return None


@dataclass
class _Principal:
    kind: str  # "user" | "service_principal"
    id: str
    display: str
    object_id: str = ""
    app_id: str = ""
    upn: str = ""
    name: str = ""
    """The directory's displayName, when Graph answered."""
    operations: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    touched: set[str] = field(default_factory=set)

    def add(self, event: ActivityLogEvent, affected: str | None) -> None:
        key = (event.correlation_id or event.event_data_id, event.operation.lower(), event.resource_id.lower())
        entry: dict[str, Any] = {
            "time": event.timestamp.isoformat() if event.timestamp else None,
            "operation": event.operation,
            "display": event.operation_display,
            "resource_id": event.resource_id,
            "status": event.status,
            "affected": affected is not None,
        }
        kept = self.operations.get(key)
        # Events arrive newest first: the first one kept is the final status, unless only a
        # "Started" was seen so far.
        if kept is None or (str(kept["status"]).lower() == "started" and event.status.lower() != "started"):
            self.operations[key] = entry
        if affected is not None and _is_change(event.operation):
            self.touched.add(affected)

    def document(self) -> dict[str, Any]:
        ops = sorted(self.operations.values(), key=lambda o: o["time"] or "")
        doc: dict[str, Any] = {"id": self.id, "display": self.display, "name": self.name,
                               "object_id": self.object_id,
                               "operations": ops[-MAX_OPERATIONS_PER_PRINCIPAL:], "operations_total": len(ops),
                               "affected_resources_changed": sorted(self.touched)}
        if self.kind == "user":
            doc["upn"] = self.upn
        else:
            doc["app_id"] = self.app_id
        return doc


def _claims(event: ActivityLogEvent) -> dict[str, Any]:
    claims = event.raw.get("claims")
    return claims if isinstance(claims, dict) else {}


def _caller(event: ActivityLogEvent) -> tuple[str, str, str, str] | None:
    """(kind, id, object id, app id or UPN) of the event's caller; None for platform events."""
    claims = _claims(event)
    caller = event.caller.strip()
    if "@" in caller:
        oid = str(claims.get(_OID) or event.caller_object_id or "")
        upn = str(claims.get(_UPN) or caller)
        return "user", (oid or upn).lower(), oid.lower(), upn
    oid = str(claims.get(_OID) or "").lower()
    app_id = str(claims.get("appid") or "").lower()
    if not (oid or app_id):
        if not _looks_like_guid(caller):
            return None  # Azure itself (e.g. "Microsoft.Compute"), not a principal
        oid = caller.lower()
    return "service_principal", oid or app_id, oid, app_id


def _looks_like_guid(value: str) -> bool:
    parts = value.split("-")
    return [len(p) for p in parts] == [8, 4, 4, 4, 12] and all(c in "0123456789abcdefABCDEF" for p in parts for c in p)


def _from_partner(event: ActivityLogEvent, partner_tenant_id: str) -> bool:
    """True for the partner's own people acting through GDAP (their home tenant is the IdP)."""
    if not partner_tenant_id:
        return False
    claims = _claims(event)
    idp = str(claims.get(_IDP) or claims.get("idp") or "").lower()
    return partner_tenant_id.lower() in idp


def _name_principals(graph: GraphClient, principals: Iterable[_Principal]) -> None:
    """Display names from the customer's directory; the ids stay when Graph cannot say."""
    from shared.http import MicrosoftApiError

    for principal in principals:
        try:
            if principal.kind == "user":
                user = graph.get_user(principal.object_id or principal.upn)
                principal.display = user.user_principal_name or principal.display
                principal.name = user.display_name
                if not principal.object_id and user.id:
                    principal.object_id = user.id.lower()
            else:
                sp = (graph.get_service_principal(principal.object_id) if principal.object_id
                      else graph.get_service_principal(app_id=principal.app_id))
                principal.display = sp.display_name or principal.display
                principal.name = sp.display_name
                principal.app_id = principal.app_id or sp.app_id.lower()
                principal.object_id = principal.object_id or sp.id.lower()
        except MicrosoftApiError as exc:
            logger.info("investigate: no directory entry for %s %s (%s)", principal.kind, principal.id,
                        type(exc).__name__)


def _fit(document: dict[str, Any]) -> str:
    """The document as JSON, trimmed until it fits one table property: the oldest operations of the
    busiest principal first, then the per-resource event lists (the principals stay)."""
    text = json.dumps(document, sort_keys=True)
    while len(text) > MAX_DOCUMENT_CHARS:
        document["trimmed"] = True
        principals = document["users"] + document["service_principals"]
        busiest = max(principals, key=lambda p: len(p["operations"]), default=None)
        if busiest is not None and len(busiest["operations"]) > 1:
            del busiest["operations"][: len(busiest["operations"]) // 2]
        elif any(entry["events"] for entry in document["resources"].values()):
            for entry in document["resources"].values():
                entry["events"] = []
        else:
            break  # only the principal lists are left; Table Storage will say if even that is too big
        text = json.dumps(document, sort_keys=True)
    return text


def summary_line(document: dict[str, Any]) -> str:
    """One line for the ledger and the notification."""
    names = [f"{u['display']} (user)" for u in document.get("users", [])]
    names += [f"{s['display']} (service principal)" for s in document.get("service_principals", [])]
    if not names:
        return (f"no principal in the activity log created or changed the affected resources "
                f"({document.get('events_examined', 0)} events examined)")
    noun = "principal" if len(names) == 1 else "principals"
    return f"{len(names)} {noun} created or changed the affected resources: {', '.join(names)}"


class Investigate:
    """Read the activity log around the alert and store who did what (see the module docstring)."""

    name: ClassVar[str] = "investigate"
    reversible: ClassVar[bool] = False

    def plan(self, ctx: ActionContext) -> list[Target]:
        alert = ctx.alert
        details: dict[str, Any] = {"subscription_id": alert.subscription_id,
                                   "affected_resources": [r.resource_id for r in alert.affected_resources]}
        return [Target("alert", alert.key, display=alert.display_name or alert.type,
                       tenant=alert.customer_tenant_id, details=details)]

    def verify(self, ctx: ActionContext, target: Target) -> bool:
        """Done when the stored investigation covers every resource the alert names now (then it is the
        context's, for the actions after it)."""
        document = load_investigation(ctx.clients.store, ctx.alert)
        if document is None:
            return False
        covered = {str(r).lower() for r in document.get("resources", {})}
        if {r.resource_id.lower() for r in ctx.alert.affected_resources} <= covered:
            ctx.investigation = document
            return True
        return False

    def execute(self, ctx: ActionContext, target: Target) -> Outcome:
        """Read the activity log and store the document (the engine has just verified there is none that
        covers the alert, under the row's lease; running it again would only write the same findings)."""
        alert = ctx.alert
        if not alert.subscription_id:
            raise ActionFailed(f"alert {alert.key} names no Azure subscription, so there is no activity log to "
                               "read; investigate it in the Partner Center portal")
        lookback = dt.timedelta(hours=float(ctx.params.get("lookback_hours", LOOKBACK.total_seconds() / 3600)))
        now = dt.datetime.now(dt.UTC)
        start, end = window(alert, now, lookback)
        affected = [r.resource_id for r in alert.affected_resources]
        arm = ctx.clients.arm(alert.customer_tenant_id)
        with permanent_errors(f"reading the activity log of subscription {alert.subscription_id}"):
            events = list(arm.activity_log(alert.subscription_id, start=start, end=end))
        document = investigate_events(events, affected, partner_tenant_id=ctx.settings.partner_tenant_id,
                                      graph=ctx.clients.graph_customer(alert.customer_tenant_id))
        document.update({"alert_key": alert.key, "subscription_id": alert.subscription_id,
                         "investigated_at": now.isoformat(), "actor": ctx.actor,
                         "window": {"start": start.isoformat(), "end": end.isoformat(),
                                    "lookback_hours": lookback.total_seconds() / 3600}})
        text = _fit(document)
        partition, row = investigation_row(alert)
        ctx.clients.store.upsert(ALERTS_TABLE, {
            "PartitionKey": partition, "RowKey": row, "kind": "investigation", "alert_key": alert.key,
            "alert_row": row_key(alert.key), "document": text,
        }, mode="replace")
        ctx.investigation = json.loads(text)
        return Outcome(summary_line(document), _data(document))

    def undo(self, ctx: ActionContext, target: Target, recorded: dict[str, Any]) -> Outcome:
        raise NotReversible("an investigation only reads the activity log and changes nothing, so there is nothing "
                            "to undo; its document stays with the alert as evidence")


def _data(document: dict[str, Any]) -> dict[str, Any]:
    return {
        "users": [u["id"] for u in document.get("users", [])],
        "service_principals": [s["id"] for s in document.get("service_principals", [])],
        "role_assignments": [r["id"] for r in document.get("role_assignments", [])],
        "events_examined": document.get("events_examined", 0),
        "window": document.get("window", {}),
    }


def investigate_events(events: Iterable[ActivityLogEvent], affected: list[str], *, partner_tenant_id: str = "",
                       graph: GraphClient | None = None) -> dict[str, Any]:
    """The investigation document (without the alert fields) from the window's events, newest first."""
    events = list(events)
    principals: dict[tuple[str, str], _Principal] = {}
    resources: dict[str, dict[str, Any]] = {rid: {"events": [], "principals": []} for rid in affected}
    partner_events = 0
    for event in events:
        caller = _caller(event)
        if caller is None:
            continue
        if _from_partner(event, partner_tenant_id):
            partner_events += 1
            continue
        kind, key, oid, extra = caller
        hit = _touches(event.resource_id, affected)
        if hit is None or not _is_change(event.operation):
            continue
        principal = principals.get((kind, key))
        if principal is None:
            principal = _Principal(kind=kind, id=key, display=extra if kind == "user" else key, object_id=oid,
                                   upn=extra if kind == "user" else "", app_id=extra if kind != "user" else "")
            principals[(kind, key)] = principal
        resources[hit]["events"].append({
            "time": event.timestamp.isoformat() if event.timestamp else None, "operation": event.operation,
            "status": event.status, "caller": event.caller, "caller_kind": kind, "principal": key,
        })
        if key not in resources[hit]["principals"]:
            resources[hit]["principals"].append(key)
    # Second pass: everything the implicated principals did in the window.
    for event in events:
        caller = _caller(event)
        if caller is None or _from_partner(event, partner_tenant_id):
            continue
        principal = principals.get((caller[0], caller[1]))
        if principal is not None:
            principal.add(event, _touches(event.resource_id, affected))
    for entry in resources.values():
        entry["events"].sort(key=lambda e: e["time"] or "")
    if graph is not None and principals:
        _name_principals(graph, principals.values())
    ordered = sorted(principals.values(), key=lambda p: min((o["time"] or "" for o in p.operations.values()),
                                                            default=""))
    return {
        "users": [p.document() for p in ordered if p.kind == "user"],
        "service_principals": [p.document() for p in ordered if p.kind == "service_principal"],
        "resources": resources,
        "role_assignments": _role_assignment_writes(ordered),
        "events_examined": len(events),
        "partner_events_left_out": partner_events,
    }


ROLE_ASSIGNMENT_WRITE = "microsoft.authorization/roleassignments/write"


def _role_assignment_writes(principals: Iterable[_Principal]) -> list[dict[str, Any]]:
    """Role assignments the implicated principals created in the window (final status not failed), oldest
    first: what remove_role_assignments deletes. Kept apart from the operations so trimming never drops them."""
    found: dict[str, dict[str, Any]] = {}
    for principal in principals:
        for op in principal.operations.values():
            if str(op["operation"]).lower() != ROLE_ASSIGNMENT_WRITE:
                continue
            if str(op["status"]).lower() in ("failed", "started", "canceled"):
                continue
            rid = str(op["resource_id"])
            found.setdefault(rid.lower(), {"id": rid, "time": op["time"], "principal": principal.id,
                                           "principal_kind": principal.kind, "principal_display": principal.display})
    return sorted(found.values(), key=lambda r: r["time"] or "")


ACTION = Investigate()
