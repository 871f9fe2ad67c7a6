"""Every admin API operation once: its id, HTTP method and route.

``functions/admin.py`` declares one function per operation (named ``admin_<operation id>``) with
these routes, the OpenAPI document is built from this table, and a test checks the two agree. Kept
free of heavy imports (only the app role names): ``function_app`` loads it on every cold start.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from shared.auth.operator_tokens import ROLE_DECIDE as DECIDE
from shared.auth.operator_tokens import ROLE_READ as READ

__all__ = ["BASE", "BY_ID", "DECIDE", "OPERATIONS", "READ", "RESERVED_ROUTE_STARTS", "Operation"]
# READ and DECIDE: app roles of the app registration (ADMIN_API_CLIENT_ID); deciding includes reading.

BASE: Final = "manage"
"""First route segment of the admin API. Not ``admin``: the Functions host reserves routes
starting with ``admin`` or ``runtime`` for itself and refuses to load a function that uses one."""


RESERVED_ROUTE_STARTS: Final = ("admin", "runtime")
"""The Functions host rejects a function whose route (before the ``api/`` prefix) starts with these."""


@dataclass(frozen=True)
class Operation:
    id: str
    method: str
    route: str
    """As the function declares it, without the ``api/`` prefix (``manage/alerts/{alert_id}``)."""
    role: str = READ
    """The app role a caller's access token must carry; empty for the public OpenAPI document."""

    @property
    def function_name(self) -> str:
        return f"admin_{self.id}"

    @property
    def path(self) -> str:
        """The OpenAPI path (relative to the ``/api`` server)."""
        return "/" + self.route


OPERATIONS: Final = (
    Operation("list_alerts", "GET", f"{BASE}/alerts"),
    Operation("get_alert", "GET", f"{BASE}/alerts/{{alert_id}}"),
    Operation("resolve_alert", "POST", f"{BASE}/alerts/{{alert_id}}/resolve", DECIDE),
    Operation("export_incident", "GET", f"{BASE}/alerts/{{alert_id}}/incident"),
    Operation("approve_alert_actions", "POST", f"{BASE}/alerts/{{alert_id}}/actions/approve", DECIDE),
    Operation("reject_alert_actions", "POST", f"{BASE}/alerts/{{alert_id}}/actions/reject", DECIDE),
    Operation("list_actions", "GET", f"{BASE}/actions"),
    Operation("approve_action", "POST", f"{BASE}/actions/{{action_id}}/approve", DECIDE),
    Operation("reject_action", "POST", f"{BASE}/actions/{{action_id}}/reject", DECIDE),
    Operation("undo_action", "POST", f"{BASE}/actions/{{action_id}}/undo", DECIDE),
    Operation("get_tokens", "GET", f"{BASE}/tokens"),
    Operation("get_digest", "GET", f"{BASE}/digest"),
    Operation("list_poison", "GET", f"{BASE}/poison"),
    Operation("get_openapi", "GET", f"{BASE}/openapi.json", ""),
)

BY_ID: Final = {op.id: op for op in OPERATIONS}
