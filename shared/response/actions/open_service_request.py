"""open_service_request: report a confirmed fraud to Microsoft with a Partner Center service request.

Why: Microsoft's guidance asks partners to "contact Azure support immediately and report the
incident", and names what it needs: "Partner Tenant ID, Customer Tenant ID, Subscription ID,
Resource ID, Impact start and impact end dates". The request is also the trail Microsoft's one-time
exception for a first compromise is reviewed against. It is opened for a confirmed fraud only (the
alert resolved as fraud: the policy's ``[verdict.fraud]``); planned for an alert that is not, the
action fails with what to do.

Partner Center's "Create a service request" is ``POST /v1/servicerequests/{agent-locale}`` with
``Title``, ``Description``, ``Severity`` (critical, moderate, minimal) and ``SupportTopicId`` (App+User).
The REST API files requests at the partner level only; the customer, subscription and resources are
named in the title and description. The topic is the first of ``GET /v1/servicerequests/supporttopics``
whose name or description mentions the ``topic`` parameter's word.

Exactly once: the title carries a marker derived from the alert key (``[fraud-responder <10 hex>]``).
verify lists the partner's service requests (``GET /v1/servicerequests``) and is done when one carries
the marker, whatever its status (a closed one was answered: opening another would repeat it), so a
retried call or a crash after the POST never opens a second ticket. The ticket id is recorded in the
ledger outcome.

Not reversible: a service request is a message to Microsoft support and cannot be unsent through the
API. If it was opened in error, add a note or close it in Partner Center (Support > Customer requests).
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any, ClassVar

from shared.response.actions._errors import permanent_errors
from shared.response.actions.base import ActionContext, ActionFailed, NotReversible, Outcome, Target

if TYPE_CHECKING:
    from shared.clients.partner_center import PartnerCenterClient, ServiceRequest

MAX_TITLE = 120
MAX_DESCRIPTION = 4000
MAX_RESOURCES = 30


def marker(alert_key: str) -> str:
    """The tag that identifies this alert's service request (stable, no customer data)."""
    return f"[fraud-responder {hashlib.sha256(alert_key.encode()).hexdigest()[:10]}]"


def _when(value: Any) -> str:
    return value.isoformat() if value is not None else "unknown"


class OpenServiceRequest:
    name: ClassVar[str] = "open_service_request"
    reversible: ClassVar[bool] = False

    def plan(self, ctx: ActionContext) -> list[Target]:
        alert = ctx.alert
        if alert.status != "resolved" or alert.resolved_reason != "fraud":
            state = f"{alert.status or 'unknown'} ({alert.resolved_reason})" if alert.resolved_reason else alert.status
            raise ActionFailed(f"a service request is opened for a confirmed fraud only, and alert {alert.key} is "
                               f"{state or 'unknown'}; resolve it as fraud (the policy's [verdict.fraud] opens it)")
        tag = marker(alert.key)
        who = alert.customer_name or alert.customer_tenant_id
        title = f"Azure fraud confirmed: customer {who}, subscription {alert.subscription_id or 'n/a'} {tag}"
        if len(title) > MAX_TITLE:
            title = f"Azure fraud confirmed: subscription {alert.subscription_id or 'n/a'} {tag}"
        resources = [r.resource_id for r in alert.affected_resources]
        return [Target(
            kind="service_request", id=tag, tenant=alert.customer_tenant_id,
            display=f"Partner Center service request for the fraud on {alert.subscription_id or who}",
            details={"title": title, "partner_tenant_id": ctx.settings.partner_tenant_id,
                     "customer_tenant_id": alert.customer_tenant_id, "subscription_id": alert.subscription_id,
                     "resource_ids": resources[:MAX_RESOURCES],
                     "impact_start": _when(alert.first_observed_at or alert.detected_at),
                     "impact_end": _when(alert.last_observed_at or alert.resolved_at),
                     "severity": str(ctx.params.get("severity", "critical")),
                     "topic": str(ctx.params.get("topic", "fraud")),
                     "agent_locale": str(ctx.params.get("agent_locale", "en-US"))},
        )]

    def verify(self, ctx: ActionContext, target: Target) -> bool:
        """Done when a service request carrying this alert's marker exists (open or closed)."""
        with permanent_errors("listing the partner's service requests in Partner Center"):
            return _existing(ctx.clients.partner_center(), target.id) is not None

    def execute(self, ctx: ActionContext, target: Target) -> Outcome:
        client = ctx.clients.partner_center()
        with permanent_errors("listing the partner's service requests in Partner Center"):
            found = _existing(client, target.id)
        if found is not None:
            return Outcome(f"service request {found.id} for this fraud already exists ({found.status}); nothing "
                           "opened", {"ticket_id": found.id, "status": found.status, "found_status": found.status},
                           already_done=True)
        details = target.details
        with permanent_errors("listing Partner Center's support topics"):
            topics = client.support_topics()
        word = str(details.get("topic", "fraud")).lower()
        topic = next((t for t in topics if word in t.name.lower() or word in t.description.lower()), None)
        if topic is None:
            raise ActionFailed(f"no Partner Center support topic mentions {word!r} (topics: "
                               f"{', '.join(t.name for t in topics) or 'none'}); set the action's topic parameter "
                               "to a word one of them uses")
        with permanent_errors("opening a Partner Center service request"):
            created = client.create_service_request(
                str(details.get("agent_locale", "en-US")), title=str(details["title"]),
                description=_description(ctx, details), severity=str(details.get("severity", "critical")),
                support_topic_id=topic.id)
        if not created.id:
            raise ActionFailed("Partner Center answered the service request without a ticket id; check Support > "
                               "Service requests in Partner Center before trying again")
        return Outcome(f"opened Partner Center service request {created.id} ({topic.name}, {created.severity})",
                       {"ticket_id": created.id, "status": created.status, "support_topic_id": topic.id,
                        "support_topic": topic.name, "severity": created.severity, "marker": target.id})

    def undo(self, ctx: ActionContext, target: Target, recorded: dict[str, Any]) -> Outcome:
        raise NotReversible(f"service request {recorded.get('ticket_id') or ''} is a message to Microsoft support and "
                            "cannot be unsent; add a note or close it in Partner Center if it was opened in error")


def _existing(client: PartnerCenterClient, tag: str) -> ServiceRequest | None:
    return next((r for r in client.service_requests() if tag in r.title or tag in r.description), None)


def _description(ctx: ActionContext, details: dict[str, Any]) -> str:
    """What Microsoft asks for, one fact a line, then how it was found; cut to the API's size."""
    alert = ctx.alert
    resources = details.get("resource_ids") or []
    lines = [
        "The partner confirmed fraud on a customer's Azure subscription and asks Microsoft to review it.",
        f"Partner tenant ID: {details.get('partner_tenant_id') or 'n/a'}",
        f"Customer tenant ID: {details.get('customer_tenant_id')}",
        f"Customer: {alert.customer_name or 'n/a'}",
        f"Subscription ID: {details.get('subscription_id') or 'n/a'}",
        "Resource IDs: " + (", ".join(resources) if resources else "none named by the alert"),
        f"Impact start: {details.get('impact_start')}",
        f"Impact end: {details.get('impact_end')}",
        f"Alert: {alert.source} {alert.id} ({alert.type}), detected {_when(alert.detected_at)}",
        f"Resolved as fraud by: {alert.resolved_by or ctx.actor}",
        f"Reference: {target_marker(details)}",
    ]
    return "\n".join(lines)[:MAX_DESCRIPTION]


def target_marker(details: dict[str, Any]) -> str:
    title = str(details.get("title", ""))
    start = title.rfind("[fraud-responder ")
    return title[start:] if start >= 0 else ""


ACTION = OpenServiceRequest()
