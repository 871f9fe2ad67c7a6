"""The token-health watch: e-mail the security contacts while the SAM refresh token needs a person.

Why: a dead refresh token silently stops polling and every customer-tenant action; the fix
(an Admin Agent consenting again with MFA) needs a human, so the humans must hear about it
early: when fewer than TOKEN_WARN_DAYS days are left, and at once when a token is refused (MFA,
consent, expiry) or a rolled refresh token could not be saved to Key Vault. Run after every poll
(functions/poll.py), it sends at most one e-mail per UTC day and kind (``expiring``, ``failing``,
``not_persisted``): a failure on a day that already had an expiry warning is still announced.
The day is claimed in the checkpoints table before sending (one sender across instances) and
released if the send fails, so the next poll tries again.

Mail goes through Graph sendMail with the app-only Graph app (not the SAM token, which may be the
thing that is broken), from NOTIFY_SENDER to SECURITY_CONTACTS.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from shared.formats import one_line
from shared.names import CHECKPOINTS_TABLE
from shared.operations.token_status import (
    EXPIRED,
    EXPIRING,
    FAILING,
    NOT_PERSISTED,
    refresh_mfa_readiness_if_due,
    token_status,
)
from shared.settings import Settings

if TYPE_CHECKING:
    from shared.response.actions.base import Clients
    from shared.storage.tables import TableStore

log = logging.getLogger(__name__)

WATCH_PARTITION: Final = "token_watch"
_KIND: Final = {FAILING: "failing", EXPIRED: "failing", NOT_PERSISTED: "not_persisted", EXPIRING: "expiring"}


def compose(status: dict[str, Any]) -> tuple[str, str]:
    """(subject, plain-text body) of the notice for a token status that needs attention."""
    age = status["refresh_token"]
    if _KIND[status["state"]] == "failing":
        subject = "[fraud responder] ACTION NEEDED: the Partner Center token is refused, alerts are not being polled"
        opening = ("The fraud responder cannot get tokens from the Secure Application Model refresh token, so it "
                   "no longer polls Partner Center for fraud alerts and cannot act in customer tenants.")
    elif _KIND[status["state"]] == "not_persisted":
        subject = ("[fraud responder] ACTION NEEDED: the rolled Partner Center refresh token could not be saved to "
                   "Key Vault")
        opening = ("Key Vault refused to store the newest Secure Application Model refresh token. The app keeps it in "
                   "memory and still polls, but a restart before the vault accepts it loses the token.")
    else:
        subject = (f"[fraud responder] WARNING: the Partner Center refresh token expires in {age['days_left']} "
                   "day(s) if unused")
        opening = (f"The Secure Application Model refresh token was last rolled {age['last_rolled_at']} and "
                   f"expires if unused on {age['expires_if_unused_at']}. The app rolls it on every poll, so this "
                   "usually means polling has stopped.")
    lines = [opening, ""]
    lines += [f"- {warning}" for warning in status["warnings"]]
    if status["next_steps"]:
        lines += ["", "What to do:"]
        lines += [f"{number}. {step}" for number, step in enumerate(status["next_steps"], 1)]
    lines += ["", "Check the state at any time with `fraud-responder token status` or GET /api/health. "
              "This notice is sent at most once a day while the problem lasts."]
    return subject, "\n".join(lines)


def watch_tokens(settings: Settings, store: TableStore, clients: Clients | None = None, *,
                 now: datetime | None = None) -> dict[str, Any]:
    """Check token health and send today's notice if one is due; returns what happened.

    ``{"state", "notified": bool, "reason"}``; never raises for a notice it could not send (it
    logs and tries again on the next run).
    """
    now = now or datetime.now(UTC)
    status = token_status(settings, store, now=now)
    kind = _KIND.get(status["state"])
    if kind is None:
        return {"state": status["state"], "notified": False, "reason": "tokens need no attention"}
    if not settings.notify_sender or not settings.security_contacts:
        log.warning("token watch: %s, but NOTIFY_SENDER or SECURITY_CONTACTS is not set, so nobody is told: %s",
                    status["state"], "; ".join(status["warnings"]))
        return {"state": status["state"], "notified": False, "reason": "NOTIFY_SENDER or SECURITY_CONTACTS not set"}
    row = f"{now.date().isoformat()}~{kind}"
    if not store.insert_once(CHECKPOINTS_TABLE, {"PartitionKey": WATCH_PARTITION, "RowKey": row, "at": now,
                                                 "state": status["state"]}):
        return {"state": status["state"], "notified": False, "reason": f"already notified today ({kind})"}
    subject, body = compose(status)
    try:
        graph = clients.graph_app() if clients is not None else _graph(settings, store)
        graph.send_mail(settings.notify_sender, to=list(settings.security_contacts), subject=subject, body=body)
    except Exception as exc:  # release the day: the next poll tries again
        store.delete(CHECKPOINTS_TABLE, WATCH_PARTITION, row)
        log.error("token watch: the %s notice could not be sent (%s: %s); retrying on the next poll", kind,
                  type(exc).__name__, one_line(exc, 300))
        return {"state": status["state"], "notified": False, "reason": f"send failed: {type(exc).__name__}"}
    log.warning("token watch: %s notice sent to %d security contact(s)", kind, len(settings.security_contacts))
    return {"state": status["state"], "notified": True, "reason": subject}


def _graph(settings: Settings, store: TableStore) -> Any:
    from shared.response.actions.base import Clients

    return Clients(settings, store).graph_app()


def watch_after_poll(settings: Settings | None = None) -> None:
    """For the poll timer: run the watch, log anything that goes wrong, never fail the poll."""
    try:
        if settings is None:
            from shared.intake.jobs import default_runtime

            runtime = default_runtime()  # the poll's own settings and table clients
            settings, store = runtime.settings, runtime.store
        else:
            from shared.factory import table_store

            store = table_store(settings)
        watch_tokens(settings, store)
    except Exception:
        log.exception("token watch failed; the poll itself is unaffected")
        return
    if settings.partner_app_client_id and settings.partner_tenant_id and settings.key_vault_url:
        try:
            refresh_mfa_readiness_if_due(settings, store)
        except Exception as exc:
            log.warning("MFA readiness could not be refreshed (%s); the poll itself is unaffected", type(exc).__name__)
