"""The partner's own security posture, read only: what Microsoft scores, who signs in without MFA, which
GDAP relationships give too much for too long. Each finding comes with the step that fixes it.

Why: Microsoft's guidance for a compromised subscription starts at home ("secure identity end to
end", "reduce blast radius"): a partner tenant without MFA, or standing Global Administrator
access to customers, turns one stolen password into many compromised customers.

Three sources, each read on its own (one that cannot be read is reported, the others still are):

- Graph beta ``security/partner/securityScore`` and its ``requirements`` (app-only,
  ``PartnerSecurity.Read.All``): MFA for the partner's admins and for customers' admins, security
  alerts promptly resolved, a security contact provided, spending budgets set on customers' Azure
  subscriptions. A requirement whose ``complianceStatus`` is not ``compliant`` (Graph spells the
  other value ``noncomplaint``) is a finding.
- Partner Center ``GET /v1/nonMfaCompliantPartnerPrincipals`` (App+User, the SAM token): partner
  users who signed in or called the API without MFA in the last 7 days. App+User calls without
  MFA are refused from 1 April 2026 (error 900421).
- Graph v1.0 ``tenantRelationships/delegatedAdminRelationships`` (app-only,
  ``DelegatedAdminRelationship.Read.All``): a live relationship granting Global Administrator, or
  one that auto-extends (``autoExtendDuration`` other than ``PT0S``: it never ends).

Not checked: a still-active DAP relationship beside GDAP. Microsoft shows DAP through the
separate Partner Customer Delegated Administration API (``GET .../v1/delegatedAdminCustomers``,
field ``dapEnabled``, audience ``https://api.partnercustomeradministration.microsoft.com``); the
report says so, and where to look.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from shared.formats import iso, one_line, parse_time

if TYPE_CHECKING:
    from shared.response.actions.base import Clients

log = logging.getLogger(__name__)

GLOBAL_ADMIN_ROLE: Final = "62e90394-69f5-4237-9190-012177145e10"
LIVE_STATUSES: Final = frozenset({"active", "activating", "approved", "approvalpending", "created"})
"""GDAP relationship statuses that grant (or are about to grant) access."""
DAP_NOT_CHECKED: Final = (
    "DAP (the old, all-powerful delegated admin) is not read by this command: check Partner Center > Customers > "
    "Admin relationships, or the Partner Customer Delegated Administration API (GET "
    "/v1/delegatedAdminCustomers, field dapEnabled), and remove every DAP relationship that a GDAP relationship "
    "replaces (Remove a DAP relationship with a customer).")

_REQUIREMENTS: Final[dict[str, tuple[str, str]]] = {
    "mfaEnforcedForAdmins": (
        "MFA for the partner's admins",
        "Enforce MFA for every user of the partner tenant with a Conditional Access policy (Entra admin center > "
        "Protection > Conditional Access; or turn on security defaults)"),
    "mfaEnforcedForAdminsOfCustomers": (
        "MFA for customers' admins",
        "Ask each customer without it to enforce MFA for its admins (Conditional Access or security defaults); the "
        "customers are listed in Partner Center's security score page"),
    "securityAlertsPromptlyResolved": (
        "Security alerts promptly resolved",
        "Resolve Microsoft's security alerts within 24 hours: `fraud-responder alerts list --status active`, then "
        "`fraud-responder alerts resolve ID --reason ...`"),
    "securityContactProvided": (
        "Security contact provided",
        "Set the security contact in Partner Center (Account settings > Legal info > Partner > Security contact)"),
    "spendingBudgetSetForCustomerAzureSubscriptions": (
        "Spending budgets on customers' Azure subscriptions",
        "Set an Azure spending budget for each customer without one (Partner Center > Customers > the customer > "
        "Azure spending budget)"),
}


@dataclass(frozen=True)
class Finding:
    """One thing to fix: where, what is wrong, and the step that fixes it."""

    area: str
    """security_score | mfa | gdap"""
    subject: str
    problem: str
    fix: str
    link: str = ""

    def as_dict(self) -> dict[str, str]:
        return {"area": self.area, "subject": self.subject, "problem": self.problem, "fix": self.fix,
                "link": self.link}


@dataclass
class Posture:
    """The report: what was read, the findings, and the sources that could not be read."""

    generated_at: datetime
    score: dict[str, Any] = field(default_factory=dict)
    requirements: list[dict[str, Any]] = field(default_factory=list)
    non_mfa_principals: list[dict[str, Any]] = field(default_factory=list)
    relationships: list[dict[str, Any]] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    """One line per source that could not be read (the rest of the report stands)."""

    @property
    def clean(self) -> bool:
        return not self.findings and not self.errors

    def as_dict(self) -> dict[str, Any]:
        """The stable JSON shape (CLI --json, the digest): fields are only ever added."""
        return {"generated_at": iso(self.generated_at), "clean": self.clean, "score": self.score,
                "requirements": self.requirements, "non_mfa_principals": self.non_mfa_principals,
                "relationships": self.relationships, "findings": [f.as_dict() for f in self.findings],
                "errors": self.errors, "not_checked": [DAP_NOT_CHECKED]}

    def as_text(self) -> list[str]:
        """Readable lines: the score, then each finding with its fix, then what could not be read."""
        lines: list[str] = []
        if self.score:
            lines.append(f"  Partner security score: {_number(self.score.get('current'))} of "
                         f"{_number(self.score.get('max'))} (refreshed {self.score.get('refreshed') or 'unknown'})")
        if not self.findings:
            lines.append("  No findings." if not self.errors else "  No findings in what could be read.")
        for finding in self.findings:
            lines.append(f"  - [{finding.area}] {finding.subject}: {finding.problem}")
            lines.append(f"    Fix: {finding.fix}" + (f" ({finding.link})" if finding.link else ""))
        lines += [f"  ! could not read {error}" for error in self.errors]
        lines.append(f"  Not checked: {DAP_NOT_CHECKED}")
        return lines


def _number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, (int, float)) else "?"


def _requirement_detail(raw: dict[str, Any]) -> str:
    kind = str(raw.get("requirementType") or "")
    if kind == "mfaEnforcedForAdmins":
        return (f"{raw.get('adminsRequiredNotUsingMfaCount', '?')} of {raw.get('totalAdminsCount', '?')} admins and "
                f"{raw.get('usersRequiredNotUsingMfaCount', '?')} of {raw.get('totalUsersCount', '?')} users are not "
                "using MFA")
    if kind == "mfaEnforcedForAdminsOfCustomers":
        total, compliant = raw.get("totalTenantCount"), raw.get("compliantTenantCount")
        missing = total - compliant if isinstance(total, int) and isinstance(compliant, int) else "?"
        return f"{missing} of {total if total is not None else '?'} customer tenants do not enforce MFA for admins"
    if kind == "securityAlertsPromptlyResolved":
        return f"alerts are resolved in {_number(raw.get('averageResponseTimeInHours'))} hours on average"
    if kind == "spendingBudgetSetForCustomerAzureSubscriptions":
        total, done = raw.get("totalCustomersCount"), raw.get("customersWithSpendBudgetCount")
        missing = total - done if isinstance(total, int) and isinstance(done, int) else "?"
        return f"{missing} of {total if total is not None else '?'} customers have no spending budget"
    return "not provided" if kind == "securityContactProvided" else "not met"


def _score(posture: Posture, clients: Clients) -> None:
    graph = clients.graph_app()
    score = graph.partner_security_score()
    posture.score = {"current": score.get("currentScore"), "max": score.get("maxScore"),
                     "refreshed": iso(parse_time(score.get("lastRefreshDateTime")))}
    for raw in graph.partner_security_requirements():
        kind = str(raw.get("requirementType") or raw.get("id") or "")
        title, fix = _REQUIREMENTS.get(kind, (kind or "unnamed requirement", "See the requirement's help page"))
        status = str(raw.get("complianceStatus") or "unknown")
        detail = _requirement_detail(raw)
        posture.requirements.append({"type": kind, "title": title, "compliance": status, "score": raw.get("score"),
                                     "max_score": raw.get("maxScore"), "detail": detail,
                                     "action_url": raw.get("actionUrl") or "", "help_url": raw.get("helpUrl") or ""})
        if status != "compliant":
            posture.findings.append(Finding("security_score", title, f"not met ({detail})", fix,
                                            str(raw.get("actionUrl") or raw.get("helpUrl") or "")))


def _non_mfa(posture: Posture, clients: Clients) -> None:
    for principal in clients.partner_center().non_mfa_compliant_principals():
        when = iso(principal.last_non_mfa_at)
        posture.non_mfa_principals.append({"upn": principal.upn, "object_id": principal.object_id,
                                           "tenant_id": principal.tenant_id, "last_without_mfa": when})
        posture.findings.append(Finding(
            "mfa", principal.upn or principal.object_id,
            f"signed in to Partner Center or called its API without MFA (last {when or 'in the last 7 days'})",
            "Require MFA for this user (Conditional Access for all users of the partner tenant); App+User calls "
            "without MFA are refused from 1 April 2026 (error 900421). If it is the responder's SAM user, renew the "
            "refresh token with an MFA sign-in (`fraud-responder token status` shows the steps)"))


def _days(duration: Any) -> float | None:
    """An ISO 8601 duration (``P730D``, ``PT0S``, ``P180DT12H``) in days; None when unreadable."""
    match = re.fullmatch(r"P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?", str(duration or ""))
    if not match or str(duration) in ("P", "PT"):
        return None
    days, hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    return days + hours / 24 + minutes / 1440 + seconds / 86400


def _relationships(posture: Posture, clients: Clients) -> None:
    for raw in clients.graph_app().delegated_admin_relationships():
        customer: dict[str, Any] = raw["customer"] if isinstance(raw.get("customer"), dict) else {}
        roles = [str(r.get("roleDefinitionId", "")).lower() for r in
                 ((raw.get("accessDetails") or {}).get("unifiedRoles") or []) if isinstance(r, dict)]
        status = str(raw.get("status") or "")
        extend = _days(raw.get("autoExtendDuration"))
        name = f"{raw.get('displayName') or raw.get('id')} ({customer.get('displayName') or customer.get('tenantId')})"
        posture.relationships.append({"id": raw.get("id"), "display_name": raw.get("displayName"),
                                      "customer_tenant_id": customer.get("tenantId"),
                                      "customer_name": customer.get("displayName"), "status": status,
                                      "roles": roles, "duration": raw.get("duration"),
                                      "auto_extend": raw.get("autoExtendDuration"),
                                      "ends": iso(parse_time(raw.get("endDateTime")))})
        if status.lower() not in LIVE_STATUSES:
            continue
        if GLOBAL_ADMIN_ROLE in roles:
            posture.findings.append(Finding(
                "gdap", name, "grants Global Administrator in the customer's tenant",
                "Create a relationship with only the least-privileged roles the work needs (for example Helpdesk, "
                "User or Billing Administrator) and terminate this one (Partner Center > Customers > the customer > "
                "Admin relationships)"))
        if extend:
            posture.findings.append(Finding(
                "gdap", name, f"auto-extends by {extend:g} days at every end: it never expires",
                "Turn off auto-extend (PATCH the relationship's autoExtendDuration to PT0S, or in Partner Center) "
                "so the access ends unless someone renews it on purpose"))


def collect(clients: Clients, *, now: datetime | None = None) -> Posture:
    """Read the three sources (each on its own: a failure is recorded in ``errors``) and build the findings."""
    posture = Posture(generated_at=now or datetime.now(UTC))
    for name, read in (("the partner security score (Graph beta security/partner/securityScore)", _score),
                       ("non-MFA partner principals (Partner Center nonMfaCompliantPartnerPrincipals)", _non_mfa),
                       ("GDAP relationships (Graph tenantRelationships/delegatedAdminRelationships)", _relationships)):
        try:
            read(posture, clients)
        except Exception as exc:  # one unreadable source must not hide the others
            log.warning("posture: %s could not be read: %s", name, type(exc).__name__)
            posture.errors.append(f"{name}: {one_line(exc, 300)}")
    return posture
