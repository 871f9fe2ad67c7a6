"""Resolve an alert as an operator: write Resolved with a reason back to its source, and record who.

Why: Microsoft asks partners to report every alert back as Fraud, Legitimate or Ignore. The write
goes through update_status's ``resolve_alert`` (Partner Center takes only Fraud or Ignore, so
Legitimate is sent as Ignore and the substitution is noted). Who did it is recorded twice: on the
alert row (``resolved_by`` = ``operator:<name>``) and as a succeeded ``update_status`` row in the
action ledger, so ``actions list --alert ID`` shows it and ``actions undo`` can reopen the alert
if the resolution was a mistake.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from shared.names import ALERTS_TABLE
from shared.operations import InvalidRequest, NotFound, SourceRefused, Unavailable
from shared.settings import Settings

if TYPE_CHECKING:
    from shared.alerts import Alert
    from shared.response.actions.base import Outcome
    from shared.storage.tables import TableStore

log = logging.getLogger(__name__)

REASONS = ("fraud", "legitimate", "ignore")
OPERATOR_RULE = "operator"
"""The ledger's ``rule`` for rows an operator created directly (not through the policy)."""


def resolve(settings: Settings, store: TableStore, alert_id: str, reason: str, operator: str) -> dict[str, Any]:
    """Resolve ``alert_id`` (an id or ``source:id``) with ``reason`` as ``operator``.

    Returns ``{"alert": <alert JSON after>, "operator", "reason", "summary", "already_done",
    "sent_status", "sent_reason", "note", "action_id"}``. Idempotent: resolving again with the same
    reason changes nothing at the source. Raises InvalidRequest, NotFound, SourceRefused (the
    source refused for good) or Unavailable (token, throttling, network, storage: try later).
    """
    from shared.alerts import from_entity
    from shared.views import alert_json, find_alert

    reason = (reason or "").strip().lower()
    if reason not in REASONS:
        raise InvalidRequest(f"reason must be one of {', '.join(REASONS)}, not {reason!r}")
    operator = (operator or "").strip()
    if not operator:
        raise InvalidRequest("the operator's name is required: it is recorded as who resolved the alert")
    entity = _unavailable_on_storage_errors(lambda: find_alert(store, alert_id))
    if entity is None:
        raise NotFound(f"no stored alert {alert_id!r}: list them with `fraud-responder alerts list` "
                       "(or GET /api/manage/alerts)")
    alert = from_entity(entity)
    outcome = _resolve_at_source(settings, store, alert.key, reason, operator)
    action_id = _record_in_ledger(settings, store, alert, dict(entity), reason=reason, operator=operator,
                                  outcome=outcome)
    after = _unavailable_on_storage_errors(
        lambda: store.get(ALERTS_TABLE, str(entity["PartitionKey"]), str(entity["RowKey"]))) or entity
    log.info("alert %s resolved as %s by %s: %s", alert.key, reason, operator, outcome.summary)
    return {
        "alert": alert_json(after, detail=True), "operator": operator, "reason": reason,
        "summary": outcome.summary, "already_done": outcome.already_done,
        "sent_status": str(outcome.data.get("sent_status", "")),
        "sent_reason": str(outcome.data.get("sent_reason", "")),
        "note": str(outcome.data.get("note", "")), "action_id": action_id,
    }


def _unavailable_on_storage_errors(call: Any) -> Any:
    from shared.storage.errors import StorageError

    try:
        return call()
    except StorageError as exc:
        raise Unavailable(f"{exc}; try again when storage answers") from None


def _resolve_at_source(settings: Settings, store: TableStore, key: str, reason: str, operator: str) -> Outcome:
    from shared.auth.errors import TokenHealthError
    from shared.auth.secrets import SecretStoreError
    from shared.http import MicrosoftApiError
    from shared.response.actions.base import ActionFailed
    from shared.response.actions.update_status import resolve_alert
    from shared.storage.errors import StorageError

    try:
        return resolve_alert(settings, store, key, reason, operator)
    except ActionFailed as exc:
        raise SourceRefused(str(exc)) from None
    except TokenHealthError as exc:
        raise Unavailable(exc.operator_message) from None
    except SecretStoreError as exc:
        raise Unavailable(str(exc)) from None
    except MicrosoftApiError as exc:  # throttled, 5xx, timeouts, conflicts: nothing was changed for sure
        raise Unavailable(f"{exc}; nothing may have changed yet: run the same resolve again later") from None
    except StorageError as exc:
        raise Unavailable(f"{exc}; the source may already show the new status: run the same resolve again") \
            from None


def _record_in_ledger(settings: Settings, store: TableStore, alert: Alert, entity: dict[str, Any], *, reason: str,
                      operator: str, outcome: Outcome) -> str:
    """A succeeded update_status row for this resolution (the audit trail; undo reopens the alert).

    Best effort: the source is already updated and the alert row names the operator, so a ledger
    failure is logged, not raised. Returns the action id ("" when it could not be written).
    """
    from shared.response.actions.base import ActionContext, Clients
    from shared.response.actions.update_status import ACTION
    from shared.response.ledger import SUCCEEDED, Ledger, LedgerConflict, NewRow, now_utc, one_line
    from shared.storage.errors import StorageError

    actor = f"operator:{operator}"
    ctx = ActionContext(settings=settings, alert=alert, params={"status": "resolved", "reason": reason},
                        clients=Clients(settings, store), actor=actor)
    [target] = ACTION.plan(ctx)
    ledger = Ledger(store)
    done = {"state": SUCCEEDED, "actor": actor, "approved_by": operator, "approved_at": now_utc(),
            "summary": one_line(outcome.summary, 1000), "data": outcome.data, "already_done": outcome.already_done,
            "error": "", "params": {"status": "resolved", "reason": reason}, "target_details": target.details,
            "target_display": target.display, "reason": f"resolved by operator {operator}"}
    try:
        created, entry = ledger.claim(NewRow(
            alert=alert, alert_partition=str(entity["PartitionKey"]), alert_row=str(entity["RowKey"]),
            action="update_status", target=target, mode="enforce", state=SUCCEEDED, actor=actor,
            rule=OPERATOR_RULE, reason=f"resolved by operator {operator}", version=int(entity.get("version", 0)),
            params={"status": "resolved", "reason": reason}))
        if created or not (outcome.already_done and entry.state == SUCCEEDED):
            entry = ledger.transition(entry, done)  # else: keep what the first resolution recorded (for undo)
    except (StorageError, LedgerConflict) as exc:
        log.warning("alert %s was resolved by %s but the ledger row could not be written: %s", alert.key, operator,
                    exc)
        return ""
    return entry.action_id
