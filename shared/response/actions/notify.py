"""notify: tell the partner's security contacts and the customer's contacts what happened and what waits.

E-mail goes through Graph sendMail from the NOTIFY_SENDER mailbox with the app-only Graph token
(application permission Mail.Send; restrict it to that mailbox with an Exchange application access
policy). When NOTIFY_WEBHOOK_SECRET_NAME is set, a short text is also posted to a Teams/Slack-style
incoming webhook whose URL is read from Key Vault: the URL is a secret (anyone holding it can post),
so it never reaches a log, an exception or a row.

One notification per alert version (target ``notification``, id ``<alert key>#v<version>``), at most
one per subscription and alert category per window (``throttle_hours``; see notify_throttle.py).
A throttled notification is counted and announced by the next one sent, never lost. Not reversible.
"""

from __future__ import annotations

import logging
from html import escape
from typing import TYPE_CHECKING, Any, ClassVar

from shared.alerts import Alert, row_key
from shared.http import TransientError
from shared.names import ALERTS_TABLE
from shared.response.actions._errors import permanent_errors
from shared.response.actions.base import ActionContext, ActionFailed, NotReversible, Outcome, Target
from shared.response.notify_message import Message, compose, when
from shared.response.notify_throttle import NotifyThrottle, default_hours, throttle_row

if TYPE_CHECKING:
    from shared.clients.graph import MailAttachment

log = logging.getLogger(__name__)

WEBHOOK_TIMEOUT_SECONDS = 10.0


class Notify:
    name: ClassVar[str] = "notify"
    reversible: ClassVar[bool] = False

    def plan(self, ctx: ActionContext) -> list[Target]:
        version = alert_version(ctx)
        recipients, notes = recipients_for(ctx)
        return [Target(
            kind="notification", id=f"{ctx.alert.key}#v{version}", tenant=ctx.alert.customer_tenant_id,
            display=f"notification about alert {ctx.alert.id} (version {version})",
            details={"recipients": recipients, "notes": notes, "webhook": webhook_wanted(ctx),
                     "throttle_hours": throttle_hours(ctx), "test": is_test(ctx)},
        )]

    def verify(self, ctx: ActionContext, target: Target) -> bool:
        """True when this notification was already sent or already counted as held back."""
        return NotifyThrottle(ctx.clients.store).done(target.id) is not None

    def execute(self, ctx: ActionContext, target: Target) -> Outcome:
        settings = ctx.settings
        # The engine has just read the done record (verify) under the row's lease and found none.
        throttle = NotifyThrottle(ctx.clients.store)
        recipients, notes = recipients_for(ctx)
        mail = bool(settings.notify_sender and recipients)
        webhook = webhook_wanted(ctx)
        if not mail and not webhook:
            raise ActionFailed(_nobody(ctx, recipients))
        hours = throttle_hours(ctx)
        row = throttle_row(ctx.alert, test=is_test(ctx))
        decision = throttle.decide(row, target.id, ctx.alert.key, hours)
        held = decision.suppressed
        if decision.kind == "throttle":
            data: dict[str, Any] = {"throttled": True, "suppressed": held.count,
                                    "since": held.since.isoformat() if held.since else None,
                                    "throttle_key": row, "window_hours": hours}
            throttle.record_done(target.id, outcome="throttled", detail=data)
            return Outcome(f"throttled: {held.count} suppressed since {when(held.since)}", data)

        message = compose(ctx.alert, investigation=ctx.investigation, summary=ctx.summary,
                          suppressed=held if held.count else None, test=is_test(ctx))
        data = {"throttled": False, "subject": message.subject, "recipients": recipients if mail else [],
                "notes": notes, "suppressed_announced": held.count, "throttle_key": row, "window_hours": hours,
                "test": is_test(ctx)}
        try:
            if mail:
                html, attachments = with_chart(ctx.alert, message.body)
                with permanent_errors(f"sending the notification e-mail from {settings.notify_sender}"):
                    ctx.clients.graph_app().send_mail(settings.notify_sender, to=recipients, subject=message.subject,
                                                      body=html or message.body,
                                                      content_type="HTML" if html else "Text",
                                                      attachments=attachments)
                data["chart"] = bool(attachments)
            data["mail"] = "sent" if mail else "not sent: " + ("NOTIFY_SENDER is not set" if recipients
                                                                else "no e-mail recipients")
            data["webhook"] = (post_webhook(ctx, message, required=not mail) if webhook
                               else "off in this rule" if settings.notify_webhook_secret_name else "not configured")
        except ActionFailed:
            throttle.release(row, target.id)
            raise
        throttle.confirm(row, target.id)
        throttle.record_done(target.id, outcome="sent", detail=data)
        sent = f"sent to {len(recipients)} recipient(s)" if mail else "posted to the webhook only"
        if mail and webhook:
            sent += f"; webhook {data['webhook']}"
        log.info("notification about alert %s %s", ctx.alert.key, sent)
        return Outcome(sent + (f"; announced {held.count} suppressed" if held.count else ""), data)

    def undo(self, ctx: ActionContext, target: Target, recorded: dict[str, Any]) -> Outcome:
        raise NotReversible("a notification cannot be unsent; send a correction to the same recipients instead")


ACTION = Notify()


# --- parameters and recipients --------------------------------------------------------------------


def with_chart(alert: Alert, text: str) -> tuple[str, list[MailAttachment]]:
    """For an alert whose evidence holds a daily spend series: the text as HTML with the chart inline
    (a PNG attachment shown by ``cid:``); ("", []) otherwise, and the e-mail stays plain text."""
    from shared.spend.chart import CHART_CONTENT_ID, chart_for

    png = chart_for(alert.additional_details)
    if png is None:
        return "", []
    from shared.clients.graph import MailAttachment

    html = (f'<pre style="font-family: Consolas, Menlo, monospace; font-size: 13px">{escape(text)}</pre>\n'
            f'<p><img src="cid:{CHART_CONTENT_ID}" alt="Daily spend of the subscription, the judged day in red" '
            'width="560" height="180"></p>')
    return html, [MailAttachment("daily-spend.png", "image/png", png, content_id=CHART_CONTENT_ID)]


def is_test(ctx: ActionContext) -> bool:
    return ctx.test or ctx.alert.is_test


def throttle_hours(ctx: ActionContext) -> float:
    """The policy's throttle_hours, else the default for the alert's category."""
    value = ctx.params.get("throttle_hours")
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return float(value)
    return default_hours(ctx.alert.category)


def webhook_wanted(ctx: ActionContext) -> bool:
    return bool(ctx.settings.notify_webhook_secret_name) and ctx.params.get("webhook", True) is not False


def alert_version(ctx: ActionContext) -> int:
    """The alert version being answered: the engine passes it as params["_version"]; else the stored one."""
    given = ctx.params.get("_version")
    if isinstance(given, int) and not isinstance(given, bool) and given > 0:
        return given
    entity = ctx.clients.store.get(ALERTS_TABLE, ctx.alert.customer_tenant_id, row_key(ctx.alert.key),
                                   select=["version"])
    try:
        return max(int((entity or {}).get("version") or 1), 1)
    except (TypeError, ValueError):
        return 1


def recipients_for(ctx: ActionContext) -> tuple[list[str], list[str]]:
    """(addresses, notes): partner contacts and/or the customer's, per params["to"], without duplicates.

    If nobody the policy asked for has an address, the partner's security contacts get it anyway:
    an alert is never left unseen because a customer has no contacts on file.
    """
    from shared.response.contacts import recipients

    wanted = ctx.params.get("to") or ("partner",)
    wanted = (wanted,) if isinstance(wanted, str) else tuple(wanted)
    found = recipients(ctx.settings, ctx.clients.store, ctx.alert.customer_tenant_id, wanted)
    notes: list[str] = []
    if "partner" in wanted and not found.partner:
        notes.append("SECURITY_CONTACTS is empty")
    if "customer" in wanted and not found.customer:
        notes.append(f"no contacts on file for customer tenant {ctx.alert.customer_tenant_id}")
    addresses = list(found.all())
    if not addresses and "partner" not in wanted and ctx.settings.security_contacts:
        addresses = list(ctx.settings.security_contacts)
        notes.append("sent to the partner's security contacts instead")
    return addresses, notes


def _nobody(ctx: ActionContext, recipients: list[str]) -> str:
    if recipients:
        return ("NOTIFY_SENDER is not set, so no e-mail can be sent: set it to a mailbox (UPN) of the partner "
                "tenant that the Graph app may send from (Mail.Send)")
    return (f"nobody to notify about alert {ctx.alert.key}: SECURITY_CONTACTS is empty and customer tenant "
            f"{ctx.alert.customer_tenant_id} has no contacts; set SECURITY_CONTACTS (or "
            "NOTIFY_WEBHOOK_SECRET_NAME for a webhook)")


# --- the incoming webhook ---------------------------------------------------------------------------


def post_webhook(ctx: ActionContext, message: Message, *, required: bool) -> str:
    """POST {"text": ...} to the webhook; returns "posted" or why not.

    When e-mail went out too (``required`` False) a failure is reported, not raised: retrying the
    job would send the e-mail again. When the webhook is the only channel, failures raise
    (ActionFailed when permanent, TransientError so the queue retries).
    """
    import httpx

    from shared.auth.secrets import SecretStoreError
    from shared.http import verify_from_settings

    name = ctx.settings.notify_webhook_secret_name
    try:
        url = ctx.clients.secrets().get(name)
    except SecretStoreError as exc:
        return _webhook_failure(f"cannot read its URL from Key Vault secret {name} ({type(exc).__name__})",
                                required=required, permanent=True)
    if not url.startswith("https://"):
        return _webhook_failure(f"Key Vault secret {name} does not hold an https:// URL", required=required,
                                permanent=True)
    # Straight through the transport: httpx.Client logs every request URL at INFO, and this URL is
    # the secret. No redirects are followed (a 3xx is a failure), so it is sent nowhere else.
    request = httpx.Request("POST", url, json={"text": message.short},
                            extensions={"timeout": httpx.Timeout(WEBHOOK_TIMEOUT_SECONDS).as_dict()})
    try:
        with httpx.HTTPTransport(verify=verify_from_settings(ctx.settings)) as transport:
            response = transport.handle_request(request)
            response.read()
    except httpx.HTTPError as exc:  # the message may hold the URL: only the kind of failure is kept
        return _webhook_failure(f"the connection failed ({type(exc).__name__})", required=required, permanent=False)
    if 200 <= response.status_code < 300:
        return "posted"
    transient = response.status_code == 429 or response.status_code >= 500
    return _webhook_failure(f"it answered HTTP {response.status_code}", required=required, permanent=not transient)


def _webhook_failure(reason: str, *, required: bool, permanent: bool) -> str:
    text = f"posting to the notification webhook failed: {reason}"
    log.warning("%s", text)
    if not required:
        return "failed: " + reason
    if permanent:
        raise ActionFailed(text + "; check the URL in Key Vault (NOTIFY_WEBHOOK_SECRET_NAME)")
    raise TransientError(text, service="notification webhook", method="POST")
