"""report_admin_recovery_methods: each Global Administrator's recovery e-mail and phone methods, recent ones flagged.

Microsoft's checklist: "review and verify all global admin password recovery e-mails and phone
numbers". Read only. One target per member of the customer's Global Administrator role; for each,
Graph ``GET /users/{id}/authentication/emailMethods`` and ``.../phoneMethods``
(``UserAuthenticationMethod.Read.All``; GDAP role Authentication Administrator or Global Reader).

A method counts as recent when it was registered within ``recent_days`` before the alert's first
sighting (or since). Its own ``createdDateTime`` decides where Graph gives one; Graph often leaves
it null for e-mail and phone methods, so the Entra audit log is read too (``GET
/auditLogs/directoryAudits``, service "Authentication Methods", ``AuditLog.Read.All``): a
"... security info" event for that admin in the window flags the methods without a date of their
own. An unreadable audit log is reported in the outcome, not a failure.

The ledger row's summary (what notifications and ``alerts show`` print) and its ``methods`` mask
addresses and numbers; ``data["personal_data"]["methods"]`` keeps them in full for the partner's
incident record (left out of the ledger's JSON: CLI and admin API).
"""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar

from shared.formats import parse_time
from shared.http import BadRequest, Forbidden, NotFound
from shared.response.actions._admins import global_admin_targets, mask_email, mask_phone
from shared.response.actions._errors import permanent_errors
from shared.response.actions.base import ActionContext, NotReversible, Outcome, Target
from shared.response.ledger import PERSONAL_DATA

AUDIT_SERVICE = "Authentication Methods"


def _iso(moment: dt.datetime | None) -> str | None:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None


class ReportAdminRecoveryMethods:
    name: ClassVar[str] = "report_admin_recovery_methods"
    reversible: ClassVar[bool] = False

    def plan(self, ctx: ActionContext) -> list[Target]:
        return global_admin_targets(ctx)

    def verify(self, ctx: ActionContext, target: Target) -> bool:
        """Always False: a report is read afresh each time (reading twice is harmless)."""
        return False

    def _since(self, ctx: ActionContext) -> dt.datetime:
        alert = ctx.alert
        seen = [t for t in (alert.first_observed_at, alert.detected_at) if t is not None]
        start = min([*seen, dt.datetime.now(dt.UTC)])
        return start - dt.timedelta(days=float(ctx.params.get("recent_days", 7.0)))

    def _security_info_events(self, ctx: ActionContext, target: Target,
                              since: dt.datetime) -> tuple[list[dict[str, Any]], str]:
        """This admin's "... security info" audit events since ``since``, and a note when unreadable."""
        graph = ctx.clients.graph_customer(target.tenant)
        query = (f"activityDateTime ge {_iso(since)} and loggedByService eq '{AUDIT_SERVICE}'")
        events: list[dict[str, Any]] = []
        try:
            for record in graph.directory_audits(filter=query):
                name = str(record.get("activityDisplayName") or "")
                targets = record.get("targetResources") or []
                mine = any(isinstance(t, dict) and (str(t.get("id", "")).lower() == target.id.lower() or str(
                    t.get("userPrincipalName") or "").lower() == target.display.lower()) for t in targets)
                if mine and "security info" in name.lower() and str(record.get("result", "success")) == "success":
                    events.append({"activity": name, "at": record.get("activityDateTime"),
                                   "detail": str(record.get("resultReason") or "")})
        except (Forbidden, NotFound, BadRequest) as exc:
            return [], f"the audit log could not be read ({exc}); dates come from the methods only"
        return events, ""

    def execute(self, ctx: ActionContext, target: Target) -> Outcome:
        graph = ctx.clients.graph_customer(target.tenant)
        with permanent_errors(f"reading the authentication methods of {target.display}"):
            methods = graph.recovery_methods(target.id)
        since = self._since(ctx)
        events, audit_note = self._security_info_events(ctx, target, since)
        latest_event = max((e for e in events if parse_time(e["at"])), key=lambda e: str(e["at"]), default=None)
        rows: list[dict[str, Any]] = []
        for method in methods:
            masked = mask_email(method.value) if method.kind == "email" else mask_phone(method.value)
            label = "e-mail" if method.kind == "email" else f"phone ({method.phone_type or 'mobile'})"
            if method.created is not None:
                recent, evidence = method.created >= since, f"registered {_iso(method.created)}"
            elif latest_event is not None:
                recent, evidence = True, f"audit log: {latest_event['activity']} at {latest_event['at']}"
            else:
                recent, evidence = False, "registration date unknown"
            rows.append({"kind": method.kind, "type": method.phone_type or "email", "label": label,
                         "value": method.value, "masked": masked, "registered_at": _iso(method.created),
                         "recent": recent, "evidence": evidence})
        recent_rows = [r for r in rows if r["recent"]]
        described = "; ".join(f"{r['label']} {r['masked']}" + (f" RECENT ({r['evidence']})" if r["recent"] else "")
                              for r in rows) or "no recovery e-mail or phone registered"
        flag = f"{len(recent_rows)} added or changed recently — verify with the admin: " if recent_rows else ""
        summary = f"{target.display}: {flag}{described}"
        public = [{k: v for k, v in r.items() if k != "value"} for r in rows]
        return Outcome(summary, {"user": target.id, "user_principal_name": target.display, "methods": public,
                                 "recent_count": len(recent_rows), "since": _iso(since),
                                 "audit_events": events, "audit_note": audit_note,
                                 PERSONAL_DATA: {"methods": rows}})

    def undo(self, ctx: ActionContext, target: Target, recorded: dict[str, Any]) -> Outcome:
        raise NotReversible("a report changes nothing; there is nothing to undo")


ACTION = ReportAdminRecoveryMethods()
