"""update_status: write the alert's status back to its source (Investigating, or Resolved with a reason).

The alert's source module (``shared.sources``) reads and writes the status: Partner Center
``POST /v1/fraudEvents/subscription/{sub}/status`` for this event only, Graph ``PATCH
.../securityAlerts/{id}``. A local-only source (a detector, ``writes_status=False``) has nothing
at Microsoft to write: the status is recorded on the stored alert row only.

Reasons: the source says how it records ours (``sent_reason``): Graph takes fraud, ignore and
legitimate; Partner Center REST documents only Fraud and Ignore, so "legitimate" is sent there as
**Ignore** (not a failure: the alert is closed as not-fraud, which is what the operator meant)
and the outcome records that substitution; the stored alert row keeps "legitimate". The stored
row's status is updated at once, so ``alerts list`` shows it and the next sync sees no status
change to respond to.

Undo sets the status recorded before (Active when none was recorded, e.g. after a crash), resolved
alerts included: reopening a wrongly resolved alert is exactly what an operator needs undo for. An
alert that already showed the status (resolved by someone else) is recorded as found
(``found_status``) and undo refuses it: undo never reverses what the responder did not do.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar, Final

from shared import sources
from shared.alerts import Alert, from_entity, row_key
from shared.names import ALERTS_TABLE
from shared.response.actions.base import ActionContext, ActionFailed, Clients, NotReversible, Outcome, Target

if TYPE_CHECKING:
    from shared.settings import Settings
    from shared.storage.tables import TableStore

STATUSES: Final = ("active", "investigating", "resolved")
REASONS: Final = ("fraud", "ignore", "legitimate")


class UpdateStatus:
    name: ClassVar[str] = "update_status"
    reversible: ClassVar[bool] = True

    def plan(self, ctx: ActionContext) -> list[Target]:
        status, reason = wanted(ctx.params)
        shown = f"{status} ({reason})" if reason else status
        details: dict[str, Any] = {"status": status, "reason": reason, "source": ctx.alert.source}
        writer = sources.status_writer(ctx.alert.source)
        if writer is not None and reason and writer.sent_reason(reason) != reason:
            details["sent_reason"] = writer.sent_reason(reason)
        # One ledger row per status and alert version: "investigating" and a later "resolved" must
        # not share a row, and an alert Microsoft reopens (a new version) is marked again. verify
        # still skips the call when the source already shows the status.
        version = ctx.params.get("_version")
        suffix = f"#v{version}" if version else ""
        return [Target("alert", f"{ctx.alert.key}#{status}{suffix}", display=f"alert {ctx.alert.id}: status -> {shown}",
                       tenant=ctx.alert.customer_tenant_id, details=details)]

    def verify(self, ctx: ActionContext, target: Target) -> bool:
        status, reason = _from_target(ctx, target)
        current = read_source(ctx.clients, ctx.alert)
        return _matches(current, ctx.alert, status, reason)

    def execute(self, ctx: ActionContext, target: Target) -> Outcome:
        status, reason = _from_target(ctx, target)
        before = read_source(ctx.clients, ctx.alert)
        data: dict[str, Any] = {"source": ctx.alert.source, "status": status, "reason": reason,
                                "previous_status": before.status if before else "",
                                "previous_reason": before.resolved_reason if before else ""}
        if before is not None and _matches(before, ctx.alert, status, reason):
            store_status(ctx.clients.store, ctx.alert, status, reason, ctx.actor)
            data["found_status"] = _shown(before.status, before.resolved_reason)
            return Outcome(f"the alert already showed {_shown(status, reason)} at the source, nothing done", data,
                           already_done=True)
        data.update(write_source(ctx.clients, ctx.alert, status, reason))
        store_status(ctx.clients.store, ctx.alert, status, reason, ctx.actor)
        note = f" ({data['note']})" if data.get("note") else ""
        return Outcome(f"status set to {_shown(status, reason)} at {_source_name(ctx.alert)}{note}", data)

    def undo(self, ctx: ActionContext, target: Target, recorded: dict[str, Any]) -> Outcome:
        if recorded.get("found_status"):
            raise NotReversible(f"the alert already showed {recorded['found_status']} when this was recorded; the "
                                "responder did not set it, so undo leaves it")
        previous = str(recorded.get("previous_status") or "active").lower()  # not recorded: it was active
        if previous not in ("active", "investigating"):
            raise NotReversible(f"the status before was {previous}, so there is nothing to go back to; set the "
                                "status you want in Partner Center or with update_status")
        written = write_source(ctx.clients, ctx.alert, previous, "")
        store_status(ctx.clients.store, ctx.alert, previous, "", ctx.actor)
        return Outcome(f"status set back to {previous} at {_source_name(ctx.alert)}",
                       {"status": previous, **written})


ACTION = UpdateStatus()


def wanted(params: dict[str, Any]) -> tuple[str, str]:
    """(status, reason) from the policy's params, checked (the policy validates them too)."""
    status = str(params.get("status") or "investigating").lower()
    reason = str(params.get("reason") or "").lower()
    if status not in STATUSES:
        raise ActionFailed(f"update_status: status must be one of {', '.join(STATUSES)}, not {status!r}")
    if status == "resolved" and reason not in REASONS:
        raise ActionFailed(f"update_status: resolving needs a reason, one of {', '.join(REASONS)} (got {reason!r})")
    return status, reason if status == "resolved" else ""


def _from_target(ctx: ActionContext, target: Target) -> tuple[str, str]:
    if "status" in target.details:
        return wanted({"status": target.details.get("status"), "reason": target.details.get("reason")})
    return wanted(ctx.params)


def _shown(status: str, reason: str) -> str:
    return f"{status} ({reason})" if reason else status


def _source_name(alert: Alert) -> str:
    name = sources.display_name(alert.source)
    return name if sources.status_writer(alert.source) is not None else f"{name} (recorded locally)"


def _matches(current: Alert | None, alert: Alert, status: str, reason: str) -> bool:
    if current is None or current.status != status:
        return False
    if status != "resolved":
        return True
    writer = sources.status_writer(alert.source)
    sent = writer.sent_reason(reason).lower() if writer is not None else reason
    return current.resolved_reason == sent


# --- the source ------------------------------------------------------------------------------------


def read_source(clients: Clients, alert: Alert) -> Alert | None:
    """The alert as its source shows it now (None when the source no longer has it).

    A local-only source's alert is read back from its stored row: that row is its only record.
    """
    writer = sources.status_writer(alert.source)
    if writer is None:
        try:
            return find_alert(clients.store, alert.key)
        except ActionFailed:
            return None
    return writer.read_status(clients, alert)


def write_source(clients: Clients, alert: Alert, status: str, reason: str) -> dict[str, Any]:
    """Set the status at the source; returns what was sent (and a note when it differs from the ask).

    A local-only source writes nothing to Microsoft (``store_status`` records it on the row).
    """
    writer = sources.status_writer(alert.source)
    if writer is None:
        return {"sent_status": "", "sent_reason": "", "note": f"{sources.display_name(alert.source)} is a local "
                "source: the status is recorded on the stored alert only"}
    return writer.write_status(clients, alert, status, reason)


# --- the stored alert -------------------------------------------------------------------------------


def store_status(store: TableStore, alert: Alert, status: str, reason: str, actor: str) -> None:
    """Merge the new status into the stored alert row (if there is one) so lists show it at once."""
    row = row_key(alert.key)
    if store.get(ALERTS_TABLE, alert.customer_tenant_id, row, select=["RowKey"]) is None:
        return
    now = datetime.now(UTC)
    # The fingerprint is cleared: it describes the source's record as last synced, which no longer matches
    # this row, so the next sync compares the fields and sees the source reopening the alert (a new version).
    entity: dict[str, Any] = {"PartitionKey": alert.customer_tenant_id, "RowKey": row, "status": status,
                              "status_updated_by": actor, "status_updated_at": now, "fingerprint": ""}
    if status == "resolved":
        entity.update(resolved_reason=reason, resolved_by=actor, resolved_at=now)
    else:
        entity.update(resolved_reason="", resolved_by="")
    store.upsert(ALERTS_TABLE, entity, mode="merge")


def find_alert(store: TableStore, alert_key: str) -> Alert:
    """The stored alert with this key (source:id), or ActionFailed naming it."""
    rows = [e for page in store.query(ALERTS_TABLE, "RowKey eq @row and kind eq 'alert'", {"row": row_key(alert_key)})
            for e in page.entities]
    if not rows:
        raise ActionFailed(f"no stored alert {alert_key}; list them with `fraud-responder alerts list`")
    return from_entity(rows[0])


def resolve_alert(settings: Settings, store: TableStore, alert_key: str, reason: str, operator: str) -> Outcome:
    """Resolve an alert at its source with ``reason`` (fraud, ignore, legitimate), as ``operator``.

    For the ``alerts resolve`` CLI. Idempotent: an alert already resolved with that reason is left
    as it is (``already_done``).
    """
    reason = reason.lower()
    if reason not in REASONS:
        raise ValueError(f"reason must be one of {', '.join(REASONS)}, not {reason!r}")
    alert = find_alert(store, alert_key)
    ctx = ActionContext(settings=settings, alert=alert, params={"status": "resolved", "reason": reason},
                        clients=Clients(settings, store), actor=f"operator:{operator}")
    [target] = ACTION.plan(ctx)
    return ACTION.execute(ctx, target)
