"""Resolve an alert as an operator: write Resolved with a reason back to its source, and record who.

Why: Microsoft asks partners to report every alert back as Fraud, Legitimate or Ignore. The write
goes through update_status's ``resolve_alert`` (Partner Center takes only Fraud or Ignore, so
Legitimate is sent as Ignore and the substitution is noted). Who did it is recorded three times:
on the alert row (``resolved_by`` = ``operator:<name>``, the latest), as a succeeded
``update_status`` row of its own in the action ledger (so ``actions list --alert ID`` shows every
resolution and ``actions undo`` can reopen the alert), and as an insert-only record in the
decisions table: resolving twice (legitimate, then fraud) keeps both.

Resolving as legitimate or ignore expires the alert's containment that waits for approval (stop,
revoke, rotate, suspend, cancel): a resolved alert's containment cannot run. Each expiry is
recorded with who and why; a new version of the alert asks for approval afresh.
"""

from __future__ import annotations

import logging
from types import ModuleType
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
    "sent_status", "sent_reason", "note", "action_id", "expired", "verdict_actions",
    "verdict_deferred"}`` (``expired``: ids of the containment rows this resolution expired;
    ``verdict_actions``: ids of the rows a fraud verdict planned for the customer,
    ``verdict_deferred``: what it could not plan yet). Idempotent: resolving again with the same
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
    action_id = _unavailable_on_storage_errors(lambda: _record_in_ledger(
        settings, store, alert, dict(entity), reason=reason, operator=operator, outcome=outcome))
    expired = _unavailable_on_storage_errors(lambda: _expire_containment(settings, store, alert.key, reason,
                                                                         operator))
    verdict_ids, verdict_deferred = _plan_verdict(settings, store, dict(entity), reason, operator)
    after = _unavailable_on_storage_errors(
        lambda: store.get(ALERTS_TABLE, str(entity["PartitionKey"]), str(entity["RowKey"]))) or entity
    log.info("alert %s resolved as %s by %s: %s", alert.key, reason, operator, outcome.summary)
    return {
        "alert": alert_json(after, detail=True), "operator": operator, "reason": reason,
        "summary": outcome.summary, "already_done": outcome.already_done,
        "sent_status": str(outcome.data.get("sent_status", "")),
        "sent_reason": str(outcome.data.get("sent_reason", "")),
        "note": str(outcome.data.get("note", "")), "action_id": action_id, "expired": expired,
        "verdict_actions": verdict_ids, "verdict_deferred": verdict_deferred,
    }


def _plan_verdict(settings: Settings, store: TableStore, entity: dict[str, Any], reason: str,
                  operator: str) -> tuple[list[str], list[str]]:
    """A fraud verdict covers the whole customer: plan the policy's ``[verdict.fraud]`` (ids planned, deferred).

    The resolution is already recorded; a transient error while planning leaves those actions out
    (listed as deferred): resolving again plans them, and nothing twice (ledger claims are insert-once).
    """
    from shared.response.engine import Responder
    from shared.response.policy import VERDICTS

    if reason not in VERDICTS:
        return [], []
    result = _unavailable_on_storage_errors(lambda: Responder(settings, store).plan_verdict(
        str(entity["PartitionKey"]), str(entity["RowKey"]), reason, operator=operator))
    for entry in result.rows:
        log.info("verdict %s of alert %s: %s on %s is %s", reason, result.alert_key, entry.action, entry.target.id,
                 entry.state)
    return [entry.action_id for entry in result.rows], list(result.deferred)


def _unavailable_on_storage_errors(call: Any) -> Any:
    from shared.response.ledger import LedgerConflict
    from shared.storage.errors import StorageError

    try:
        return call()
    except (StorageError, LedgerConflict) as exc:
        raise Unavailable(f"{exc}; try again when storage answers (resolving again is safe)") from None


def _resolve_at_source(settings: Settings, store: TableStore, key: str, reason: str, operator: str) -> Outcome:
    from shared.auth.errors import TokenHealthError
    from shared.auth.secrets import SecretStoreError
    from shared.http import MicrosoftApiError
    from shared.response.actions.base import ActionFailed
    from shared.storage.errors import StorageError

    try:
        return _resolver_module().resolve_alert(settings, store, key, reason, operator)  # type: ignore[no-any-return]
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


def _resolver_module() -> ModuleType:
    """The module of the catalogue's status-writing action, which resolves alerts at their source."""
    import importlib

    from shared.response.catalogue import resolver
    from shared.response.registry import module_name

    return importlib.import_module(module_name(resolver().name))


def _record_in_ledger(settings: Settings, store: TableStore, alert: Alert, entity: dict[str, Any], *, reason: str,
                      operator: str, outcome: Outcome) -> str:
    """This resolution's own succeeded update_status row, and its decision record; returns the action id.

    Each resolution gets a row of its own (the target id carries a fresh suffix), so a second
    resolution never overwrites the first: both are listed, and each can be undone. The source is
    already updated; storage errors propagate (the caller answers "try again", which is safe).
    """
    import uuid
    from dataclasses import replace

    from shared.formats import one_line
    from shared.response import decisions
    from shared.response.actions.base import ActionContext, Clients
    from shared.response.catalogue import resolver
    from shared.response.ledger import SUCCEEDED, Ledger, NewRow, now_utc
    from shared.response.registry import get_action

    name = resolver().name

    actor = f"operator:{operator}"
    ctx = ActionContext(settings=settings, alert=alert, params={"status": "resolved", "reason": reason},
                        clients=Clients(settings, store), actor=actor)
    [planned] = get_action(name).plan(ctx)
    target = replace(planned, id=f"{planned.id}~{uuid.uuid4().hex[:12]}")
    ledger = Ledger(store)
    why = f"resolved as {reason} by operator {operator}"
    _created, entry = ledger.claim(NewRow(
        alert=alert, alert_partition=str(entity["PartitionKey"]), alert_row=str(entity["RowKey"]),
        action=name, target=target, mode="enforce", state=SUCCEEDED, actor=actor,
        rule=OPERATOR_RULE, reason=why, version=int(entity.get("version", 0)),
        params={"status": "resolved", "reason": reason}))
    found = str(outcome.data.get("found_status", "")) if outcome.already_done else ""
    entry = ledger.transition(entry, {
        "approved_by": operator, "approved_at": now_utc(), "summary": one_line(outcome.summary, 1000),
        "data": outcome.data, "already_done": outcome.already_done,
        "found_state": f"already {found}" if found else ""})
    decisions.record(store, alert_key=alert.key, kind="resolve", operator=operator, reason=reason,
                     action_id=entry.action_id, action=name, target=target.display,
                     outcome=one_line(outcome.summary, 300))
    return entry.action_id


def _expire_containment(settings: Settings, store: TableStore, alert_key: str, reason: str,
                        operator: str) -> list[str]:
    """Resolved as not fraud: expire the containment rows that wait for approval; their ids."""
    from shared.response.engine import NOT_FRAUD, Responder

    if reason not in NOT_FRAUD:
        return []
    expired = Responder(settings, store).expire_pending(alert_key, operator,
                                                        f"the alert was resolved as {reason} by {operator}")
    for entry in expired:
        log.info("action %s (%s on %s) expired: alert %s resolved as %s by %s", entry.action_id, entry.action,
                 entry.target.id, alert_key, reason, operator)
    return [e.action_id for e in expired]
