"""Helpers for the actions on a customer's Global Administrators: the targets, and masking personal data.

Recovery e-mail addresses and phone numbers are personal data: notifications, logs, ``alerts show``
and ledger summaries show them masked (:func:`mask_phone`, :func:`mask_email`); only the ledger
row's data, which the partner's incident record is built from, keeps them in full.
"""

from __future__ import annotations

import re

from shared.response.actions._errors import permanent_errors
from shared.response.actions.base import ActionContext, Target

WHY_ADMIN = "Global Administrator of the customer tenant"


def global_admin_targets(ctx: ActionContext) -> list[Target]:
    """One ``user`` target per member of the customer's Global Administrator role (read from Graph)."""
    tenant = ctx.alert.customer_tenant_id
    graph = ctx.clients.graph_customer(tenant)
    with permanent_errors(f"listing the Global Administrators of tenant {tenant}"):
        admins = graph.list_global_admins()
    seen: set[str] = set()
    targets: list[Target] = []
    for admin in admins:
        if admin.id.lower() in seen:
            continue
        seen.add(admin.id.lower())
        targets.append(Target("user", admin.id, display=admin.user_principal_name or admin.id, tenant=tenant,
                              details={"why": WHY_ADMIN}))
    return targets


def mask_phone(number: str) -> str:
    """``+1 4255550123`` -> ``+1 *** *** 0123``: the country code and the last four digits only."""
    text = number.strip()
    digits = re.sub(r"\D", "", text.split("x")[0])
    country = ""
    match = re.match(r"\+(\d{1,3})\s", text)
    if match:
        country = f"+{match.group(1)} "
        digits = digits[len(match.group(1)):]
    tail = digits[-4:] if len(digits) > 4 else ""
    return f"{country}*** *** {tail}".rstrip()


def mask_email(address: str) -> str:
    """``ada.admin@outlook.example`` -> ``a***@outlook.example``: the first letter and the domain only."""
    local, at, domain = address.strip().partition("@")
    if not at:
        return "***"
    return f"{local[:1]}***@{domain}"
