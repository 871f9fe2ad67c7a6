"""Approvals that do not rot: expire actions that waited too long, and tell people what to do now.

Why: an action waiting for approval protects nobody while it waits, and a list of stale pending
rows teaches operators to ignore it. After APPROVAL_EXPIRY_HOURS a waiting row is expired (on the
row, ``expired_by`` = ``approval-timeout``, and as an ``expire`` decision record), and the security
contacts get one e-mail per alert saying what expired, with the one command and the one API call
that still approve each action (an expired-by-timeout row can still be approved or rejected) and
the command that approves all of the alert's waiting actions at once.

``expire_after_poll`` runs after every poll (the poll timer), so expiry needs no timer of its own;
``fraud-responder actions expire`` runs it now. The e-mail goes through Graph sendMail from
NOTIFY_SENDER, the same path as the digest; a failed e-mail is logged and reported, the expiry
stands (the rows and decisions record it, and `actions list` shows it).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from shared.formats import iso, one_line
from shared.logs import contextual

if TYPE_CHECKING:
    from shared.response.actions.base import Clients
    from shared.response.ledger import LedgerEntry
    from shared.settings import Settings
    from shared.storage.tables import TableStore

log = logging.getLogger(__name__)


def _entry(row: LedgerEntry) -> dict[str, Any]:
    return {"id": row.action_id, "action": row.action, "target": row.target.display or row.target.id,
            "waiting_since": (row.created_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
                              if row.created_at else "unknown")}


def expire_stale_approvals(settings: Settings, store: TableStore, clients: Clients | None = None, *,
                           now: datetime | None = None, notify: bool = True) -> dict[str, Any]:
    """Expire the rows waiting longer than APPROVAL_EXPIRY_HOURS and re-notify per alert; what was done."""
    from shared.alerts import from_entity
    from shared.names import ALERTS_TABLE
    from shared.response.engine import Responder

    hours = settings.approval_expiry_hours
    if hours <= 0:
        return {"expired": [], "notified": [], "errors": [], "note": "APPROVAL_EXPIRY_HOURS is 0: approvals never "
                                                                        "expire"}
    responder = Responder(settings, store, clients)
    expired = responder.expire_stale(hours, now=now or datetime.now(UTC))
    by_alert: dict[tuple[str, str, str], list[LedgerEntry]] = defaultdict(list)
    for row in expired:
        by_alert[(row.alert_key, row.alert_partition, row.alert_row)].append(row)
    notified: list[dict[str, Any]] = []
    errors: list[str] = []
    if expired:
        log.warning("%d approval(s) expired after waiting %s hours", len(expired), hours)
    for (key, partition, row_key), rows in sorted(by_alert.items()):
        if not notify:
            break
        entity = store.get(ALERTS_TABLE, partition, row_key)
        if entity is None:
            errors.append(f"alert {key} is no longer stored; not notified")
            continue
        try:
            notified.append(_notify(settings, store, clients, from_entity(entity),
                                    entries=[_entry(r) for r in rows], hours=hours))
        except Exception as exc:  # the expiry stands; the e-mail failure is reported, not raised
            log.warning("re-notification of expired approvals of %s failed: %s", key, type(exc).__name__)
            errors.append(f"alert {key}: the e-mail was not sent: {type(exc).__name__}: {one_line(exc, 200)}")
    return {"expired": [r.as_json() for r in expired], "notified": notified, "errors": errors,
            "note": f"approvals expire after {hours} hours"}


def _notify(settings: Settings, store: TableStore, clients: Clients | None, alert: Any, *,
            entries: list[dict[str, Any]], hours: float) -> dict[str, Any]:
    from shared.operations.digest import recipients
    from shared.response.actions.base import Clients as ActionClients
    from shared.response.notify_message import compose_expired

    message = compose_expired(alert, entries, hours=hours)
    sender, to = recipients(settings)
    (clients or ActionClients(settings, store)).graph_app().send_mail(sender, to=to, subject=message.subject,
                                                                      body=message.body)
    return {"alert": alert.key, "to": to, "subject": message.subject, "actions": [e["id"] for e in entries],
            "at": iso(datetime.now(UTC))}


@contextual(job="approval-expiry")
def expire_after_poll(*, settings: Settings | None = None, store: TableStore | None = None) -> None:
    """The poll timer's follow-up: never fails the poll (a problem is logged and retried next poll)."""
    try:
        from shared.factory import table_store
        from shared.settings import get_settings

        settings = settings or get_settings()
        expire_stale_approvals(settings, store or table_store(settings))
    except Exception:
        log.exception("expiring stale approvals failed; the next poll tries again")
