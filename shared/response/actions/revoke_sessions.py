"""revoke_sessions: sign the implicated users (and optionally the customer's global admins) out everywhere.

Targets: each user the investigation implicated (``ActionContext.implicated()``), plus, when the
rule sets ``include_global_admins``, every member of the customer's Global Administrator role
(read from Graph at plan time; an attacker with a stolen admin session is the worst case). A user
listed both ways is one target. Without an investigation there are no implicated users.

Graph ``POST /users/{id}/revokeSignInSessions`` in the customer tenant (SAM token) invalidates the
user's refresh tokens and session cookies; it takes effect within minutes. Revocation is
idempotent and Graph offers no state that says "this revocation happened" (the user may have
signed in again since), so verify always says no and a redelivered or crash-interrupted job simply
revokes again: harmless, and the safe side. Not reversible: revoked sessions cannot be restored;
the user signs in again.
"""

from __future__ import annotations

from typing import Any, ClassVar

from shared.response.actions._errors import permanent_errors
from shared.response.actions.base import ActionContext, ActionFailed, NotReversible, Outcome, Target


class RevokeSessions:
    """Revoke every sign-in session of the implicated users (and global admins when asked)."""

    name: ClassVar[str] = "revoke_sessions"
    reversible: ClassVar[bool] = False

    def plan(self, ctx: ActionContext) -> list[Target]:
        tenant = ctx.alert.customer_tenant_id
        targets: list[Target] = []
        seen: set[str] = set()
        for user_id, display in ctx.implicated().users:
            if user_id.lower() in seen:
                continue
            seen.update({user_id.lower(), display.lower()})
            targets.append(Target("user", user_id, display=display or user_id, tenant=tenant,
                                  details={"why": "implicated by the investigation"}))
        if ctx.params.get("include_global_admins"):
            graph = ctx.clients.graph_customer(tenant)
            with permanent_errors(f"listing the Global Administrators of tenant {tenant}"):
                admins = graph.list_global_admins()
            for admin in admins:
                keys = {admin.id.lower(), admin.user_principal_name.lower()}
                if keys & seen:
                    continue
                seen.update(keys)
                targets.append(Target("user", admin.id, display=admin.user_principal_name or admin.id, tenant=tenant,
                                      details={"why": "Global Administrator of the customer tenant"}))
        return targets

    def verify(self, ctx: ActionContext, target: Target) -> bool:
        """Always False: revocation leaves no state to check, and doing it again is harmless."""
        return False

    def execute(self, ctx: ActionContext, target: Target) -> Outcome:
        graph = ctx.clients.graph_customer(target.tenant)
        with permanent_errors(f"revoking the sign-in sessions of {target.display}"):
            revoked = graph.revoke_sign_in_sessions(target.id)
        if not revoked:
            raise ActionFailed(f"Graph did not confirm revoking the sessions of {target.display} (value false); "
                               "revoke them in the Entra admin center (Users > Revoke sessions)")
        return Outcome(f"revoked every sign-in session of {target.display}", {"user": target.id, "revoked": True})

    def undo(self, ctx: ActionContext, target: Target, recorded: dict[str, Any]) -> Outcome:
        raise NotReversible(f"the sign-in sessions of {target.display} cannot be restored; the user signs in again")


ACTION = RevokeSessions()
