"""The text of a fraud notification: what happened, where, how bad, what was done, what waits.

Kept apart from sending (actions/notify.py) so the wording can be read and tested on its own. The
e-mail is plain text (it survives every mail client and ticketing system it is forwarded to); the
webhook gets a few lines. Nothing here is secret: alert fields, ledger ids, principal names.

``summary`` is what the engine fills in ``ActionContext.summary``: "rule" and "rule_description",
and lists under "done", "dry_run", "pending", "failed" and "retrying", each entry a string or a
dict with any of "id" (ledger id), "action", "target", "summary", "error", "mode".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from shared.alerts import Alert

PARTNER_CENTER_ALERTS: Final = "https://partner.microsoft.com/dashboard"
"""Partner Center; its security alerts dashboard is Insights > Security > Alerts (Admin Agent role)."""
PORTAL: Final = "https://portal.azure.com"
CLI: Final = "fraud-responder"
API: Final = "/api/manage"
"""The admin API's base path on the function app (shared.admin.routes)."""

NEXT_STEPS: Final = (
    "Review any other Azure resources or services provisioned in this subscription in the last week, "
    "and suspend any that look suspicious.",
    "Have all Global admins in the customer's tenant change their passwords now, if they have not already.",
    "Review and verify every Global admin's password-recovery e-mail addresses and phone numbers in "
    "Microsoft Entra ID; update them if needed.",
    "Enforce multi-factor authentication for all users, in the customer's tenant and in your CSP partner tenant "
    "(Partner Center security requirements).",
    "Review which users, tenants and subscriptions are at risk in the Azure portal.",
    "If the activity turns out to be legitimate, reject the actions waiting for approval and mark the alert "
    "Legitimate (or Ignore) in Partner Center's security alerts so Microsoft's record is right.",
)
"""Microsoft's checklist for Azure fraud notifications ("What to do when you receive a fraud notification")."""

MAX_OPERATIONS_SHOWN: Final = 5
MAX_SUPPRESSED_IDS_SHOWN: Final = 10


@dataclass(frozen=True)
class Suppressed:
    """Notifications for the same subscription and alert type held back by the throttle."""

    count: int
    since: datetime | None
    alert_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class Message:
    subject: str
    body: str
    short: str
    """A few lines for a Teams/Slack incoming webhook."""


def portal_link(tenant: str, resource_id: str) -> str:
    """The Azure portal page of a resource, opened in the customer's directory."""
    path = resource_id if resource_id.startswith("/") else "/" + resource_id
    return f"{PORTAL}/#@{tenant}/resource{path}"


def when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else "unknown"


def severity_label(alert: Alert) -> str:
    return alert.severity.capitalize() if alert.severity and alert.severity != "unknown" else "Severity unknown"


def headline(alert: Alert) -> str:
    """The category's headline as its source declares it (``shared.sources``), else the alert's own name."""
    from shared import sources

    return sources.headline(alert.category) or f"Security alert: {alert.display_name or alert.type}"


def subject(alert: Alert, *, test: bool = False) -> str:
    customer = alert.customer_name or alert.customer_tenant_id
    subscription = alert.subscription_name or alert.subscription_id or "no subscription"
    prefix = "[TEST] " if test else ""
    return f"{prefix}[{severity_label(alert)}] {headline(alert)} in {customer} / {subscription} (alert {alert.id})"


def compose(
    alert: Alert,
    *,
    investigation: Mapping[str, Any] | None = None,
    summary: Mapping[str, Any] | None = None,
    suppressed: Suppressed | None = None,
    test: bool = False,
) -> Message:
    """The notification for one alert (``test`` marks a Microsoft test alert)."""
    summary = summary or {}
    lines: list[str] = []
    if test:
        lines += ["THIS IS A TEST ALERT raised by Microsoft: nothing happened and nothing was changed.", ""]
    lines += _what(alert) + _where(alert) + _severity(alert)
    if investigation:
        lines += _investigation(investigation)
    done = _entries(summary.get("done"))
    dry_run = _entries(summary.get("dry_run"))
    pending = _entries(summary.get("pending"))
    failed = _entries(summary.get("failed"))
    retrying = _entries(summary.get("retrying"))
    lines += ["WHAT HAS BEEN DONE"]
    if summary.get("rule"):
        described = f": {summary['rule_description']}" if summary.get("rule_description") else ""
        lines.append(f"  Response policy rule \"{summary['rule']}\"{described}")
    lines += [f"  - {_describe(e)}" for e in done] or ["  Nothing has been changed yet."]
    if dry_run:
        lines += ["", "WOULD BE DONE (dry-run: nothing was changed)"]
        lines += [f"  - {_describe(e)}" for e in dry_run]
    lines += ["", "WAITING FOR APPROVAL"]
    if pending:
        for entry in pending:
            lines.append(f"  - {_describe(entry)}")
            if entry.get("id"):
                lines += approval_lines(str(entry["id"]))
        lines += bulk_lines(alert.key)
    else:
        lines.append("  Nothing.")
    if retrying:
        lines += ["", "BEING RETRIED (a transient error; the responder tries again)"]
        lines += [f"  - {_describe(e)}" for e in retrying]
    if failed:
        lines += ["", "FAILED (an operator should look)"]
        for entry in failed:
            lines.append(f"  - {_describe(entry)}")
            if entry.get("id"):
                lines.append(f"      retry after fixing the cause: {CLI} actions approve {entry['id']}")
    if suppressed and suppressed.count > 0:
        lines += ["", "HELD BACK", f"  {_suppressed_sentence(suppressed)}"]
    lines += ["", "RECOMMENDED NEXT STEPS (Microsoft's checklist for Azure fraud notifications)"]
    lines += [f"  {i}. {step}" for i, step in enumerate(NEXT_STEPS, start=1)]
    lines += ["", "LINKS",
              f"  Partner Center security alerts: {PARTNER_CENTER_ALERTS} (Insights > Security > Alerts)"]
    if alert.subscription_id:
        lines.append(f"  Subscription in the Azure portal: "
                     f"{portal_link(alert.customer_tenant_id, '/subscriptions/' + alert.subscription_id)}")
    lines += ["", f"Alert {alert.key} as seen by the CSP fraud responder: {CLI} alerts show {alert.key}"]
    return Message(subject(alert, test=test), "\n".join(lines) + "\n",
                   _short(alert, test=test, done=done, pending=pending, failed=failed, suppressed=suppressed))


def approval_lines(action_id: str) -> list[str]:
    """The one command (and the one API call) that approves a waiting action, and the one that rejects it."""
    return [f"      approve: {CLI} actions approve {action_id}",
            f"               (admin API: POST {API}/actions/{action_id}/approve)",
            f"      reject:  {CLI} actions reject {action_id} --reason \"<why>\""]


def bulk_lines(alert_key: str) -> list[str]:
    """All waiting actions of one alert in one step: each is still approved (or rejected) on its own row."""
    return [f"  All of this alert's waiting actions at once: {CLI} actions approve --alert {alert_key} --all",
            f"    (or reject them: {CLI} actions reject --alert {alert_key} --all --reason \"<why>\"; admin API: "
            f"POST {API}/alerts/{alert_key}/actions/approve or .../reject)",
            f"  Everything waiting: {CLI} actions list --pending"]


def compose_expired(alert: Alert, expired: Sequence[Mapping[str, Any]], *, hours: float) -> Message:
    """The re-notification when approvals of this alert expired unanswered: what expired and what to do now.

    ``expired`` entries are dicts with "id", "action", "target", "waiting_since" (text).
    """
    customer = alert.customer_name or alert.customer_tenant_id
    noun = "approval" if len(expired) == 1 else "approvals"
    title = (f"[Action needed] {len(expired)} {noun} expired unanswered: {headline(alert)} in {customer} "
             f"(alert {alert.id})")
    lines = [f"{len(expired)} action(s) of alert {alert.key} waited more than {hours:g} hours for an operator's "
             "decision and expired. Nothing was done: the threat they contain may still be active.", "",
             "EXPIRED (each can still be approved or rejected)"]
    for entry in expired:
        lines.append(f"  - {_describe(entry)} (waiting since {entry.get('waiting_since') or 'unknown'})")
        if entry.get("id"):
            lines += approval_lines(str(entry["id"]))
    lines += ["", "WHAT TO DO"]
    lines += bulk_lines(alert.key)
    lines += [f"  If the activity is legitimate: {CLI} alerts resolve {alert.key} --reason legitimate",
              f"  The whole record: {CLI} incident export {alert.key} --format html --out incident.html", ""]
    lines += _what(alert) + _where(alert)
    body = "\n".join(lines).rstrip() + "\n"
    short = f"{title}\n`{CLI} actions approve --alert {alert.key} --all` approves them all"
    return Message(title, body, short)


def _what(alert: Alert) -> list[str]:
    lines = ["WHAT HAPPENED", f"  {headline(alert)}: {alert.display_name or alert.type}"]
    if alert.description:
        lines.append(f"  {alert.description}")
    lines.append(f"  Type: {alert.type} (category {alert.category.replace('_', ' ')})")
    hits = "unknown" if alert.hit_count is None else str(alert.hit_count)
    lines.append(f"  Hits: {hits}; first observed {when(alert.first_observed_at)}, "
                 f"last observed {when(alert.last_observed_at)}; detected {when(alert.detected_at)}")
    from shared import sources

    lines.append(f"  Alert {alert.id} from {sources.display_name(alert.source)}, status {alert.status}")
    return [*lines, ""]


def _where(alert: Alert) -> list[str]:
    customer = alert.customer_name or "(name not given)"
    subscription = alert.subscription_name or "(name not given)"
    lines = ["WHERE", f"  Customer: {customer}, tenant {alert.customer_tenant_id}"]
    lines.append(f"  Subscription: {subscription}, {alert.subscription_id or 'not given'}")
    if alert.affected_resources:
        lines.append("  Affected resources:")
        for resource in alert.affected_resources:
            kind = f" ({resource.resource_type})" if resource.resource_type else ""
            lines.append(f"    - {resource.resource_id}{kind}")
            if resource.resource_id.startswith("/subscriptions/"):
                lines.append(f"      {portal_link(alert.customer_tenant_id, resource.resource_id)}")
    else:
        lines.append("  Affected resources: none named (check usage at subscription level)")
    return [*lines, ""]


def _severity(alert: Alert) -> list[str]:
    return ["HOW SEVERE", f"  Severity {alert.severity}, confidence {alert.confidence}", ""]


def _investigation(doc: Mapping[str, Any]) -> list[str]:
    lines = ["WHO WAS INVOLVED (ARM activity log)"]
    window = doc.get("window") if isinstance(doc.get("window"), Mapping) else {}
    start = window.get("start") or window.get("from") if window else None
    end = window.get("end") or window.get("to") if window else None
    examined = doc.get("events_examined")
    if start or end or examined is not None:
        lines.append(f"  {examined if examined is not None else 'Some'} events examined"
                     + (f" from {start} to {end}" if start or end else ""))
    principals = [("User", p) for p in _list(doc.get("users"))]
    principals += [("Service principal", p) for p in _list(doc.get("service_principals"))]
    if not principals:
        lines.append("  No user or service principal was found creating or changing the affected resources.")
    for label, principal in principals:
        name = principal.get("display") or principal.get("id") or "(unknown)"
        ids = [f"{what} {principal[key]}" for key, what in (("id", "object id"), ("app_id", "app id"))
               if principal.get(key) and principal.get(key) != name]
        lines.append(f"  - {label} {name}" + (f" ({', '.join(ids)})" if ids else ""))
        operations = _list(principal.get("operations"), allow_text=True)
        for operation in operations[:MAX_OPERATIONS_SHOWN]:
            lines.append(f"      {_operation(operation)}")
        if len(operations) > MAX_OPERATIONS_SHOWN:
            lines.append(f"      ... and {len(operations) - MAX_OPERATIONS_SHOWN} more")
    return [*lines, ""]


def _operation(operation: Any) -> str:
    if not isinstance(operation, Mapping):
        return str(operation)
    name = (operation.get("operation") or operation.get("operationName") or operation.get("name")
            or operation.get("action") or "operation")
    resource = operation.get("resource") or operation.get("resourceId") or operation.get("resource_id") or ""
    at = operation.get("time") or operation.get("at") or operation.get("eventTimestamp") or ""
    return " ".join(str(part) for part in (at, name, resource) if part)


def _list(value: Any, *, allow_text: bool = False) -> list[Any]:
    if not isinstance(value, list):
        return []
    return [v for v in value if isinstance(v, Mapping) or (allow_text and isinstance(v, str))]


def _entries(value: Any) -> list[dict[str, Any]]:
    """Summary entries as dicts: a plain string becomes {"summary": text}."""
    if not isinstance(value, Sequence) or isinstance(value, str):
        return []
    entries = []
    for item in value:
        if isinstance(item, Mapping):
            entries.append(dict(item))
        elif isinstance(item, str) and item.strip():
            entries.append({"summary": item.strip()})
    return entries


def _describe(entry: Mapping[str, Any]) -> str:
    head = " on ".join(str(entry[k]) for k in ("action", "target") if entry.get(k))
    tail = entry.get("error") or entry.get("summary") or ""
    text = f"{head}: {tail}" if head and tail else head or str(tail)
    return text or "(no details)"


def _suppressed_sentence(suppressed: Suppressed) -> str:
    ids = list(suppressed.alert_ids)[:MAX_SUPPRESSED_IDS_SHOWN]
    more = len(suppressed.alert_ids) - len(ids)
    listed = ", ".join(ids) + (f" and {more} more" if more > 0 else "")
    noun = "alert for this subscription was" if suppressed.count == 1 else "alerts for this subscription were"
    return f"{suppressed.count} further {noun} suppressed since {when(suppressed.since)}" + (
        f": {listed}" if listed else "")


def _short(alert: Alert, *, test: bool, done: Iterable[Mapping[str, Any]], pending: Sequence[Mapping[str, Any]],
           failed: Sequence[Mapping[str, Any]], suppressed: Suppressed | None) -> str:
    done = list(done)
    parts = [subject(alert, test=test)]
    status = f"{len(done)} done, {len(pending)} waiting for approval"
    if failed:
        status += f", {len(failed)} failed"
    parts.append(status + (f" (`{CLI} actions list --pending`)" if pending else ""))
    parts += [f"- {_describe(e)}" for e in done]
    if suppressed and suppressed.count > 0:
        parts.append(_suppressed_sentence(suppressed))
    return "\n".join(parts)
