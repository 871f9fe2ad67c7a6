"""require_admin_password_change: every Global Administrator of the customer must change password at next sign-in.

Microsoft's checklist for a compromised customer: "all Global admins in your customer's tenant
immediately change their passwords". One target per member of the Global Administrator role
(template 62e90394-69f5-4237-9190-012177145e10, read at plan time). Graph ``PATCH /users/{id}``
with ``passwordProfile.forceChangePasswordNextSignIn`` and ``forceChangePasswordNextSignInWithMfa``
set to true (no new password: the admin chooses one after signing in with MFA). Graph wants
``User-PasswordProfile.ReadWrite.All`` (or ``User.ReadWrite.All`` / ``Directory.AccessAsUser.All``)
and, because the targets are admins, the signed-in partner user needs the Privileged Authentication
Administrator role in the customer tenant (a GDAP role).

Verify reads the profile: both flags already true means nothing to do; if nobody here set them, the
engine records found_state and undo is refused. Undo puts back only the flags this action changed,
and only while they are still set (an admin who has already changed the password cleared them).
"""

from __future__ import annotations

from typing import Any, ClassVar

from shared.response.actions._admins import global_admin_targets
from shared.response.actions._errors import permanent_errors
from shared.response.actions.base import ActionContext, ActionFailed, NotReversible, Outcome, Target

FLAGS = ("forceChangePasswordNextSignIn", "forceChangePasswordNextSignInWithMfa")


class RequireAdminPasswordChange:
    name: ClassVar[str] = "require_admin_password_change"
    reversible: ClassVar[bool] = True

    def plan(self, ctx: ActionContext) -> list[Target]:
        return global_admin_targets(ctx)

    def _flags(self, ctx: ActionContext, target: Target) -> dict[str, bool]:
        graph = ctx.clients.graph_customer(target.tenant)
        with permanent_errors(f"reading the password profile of {target.display}"):
            user = graph.get_user(target.id)
        return {FLAGS[0]: bool(user.force_change_password_next_sign_in),
                FLAGS[1]: bool(user.force_change_password_next_sign_in_with_mfa)}

    def verify(self, ctx: ActionContext, target: Target) -> bool:
        return all(self._flags(ctx, target).values())

    def execute(self, ctx: ActionContext, target: Target) -> Outcome:
        before = self._flags(ctx, target)
        if all(before.values()):
            return Outcome(f"{target.display} must already change password at next sign-in (with MFA); nothing "
                           "done", {"user": target.id, "previous": before, "found": True}, already_done=True)
        graph = ctx.clients.graph_customer(target.tenant)
        with permanent_errors(f"requiring a password change of {target.display} (the partner user needs the "
                              "Privileged Authentication Administrator role in the customer tenant for an admin)"):
            graph.update_user(target.id, force_change_password_next_sign_in=True,
                              force_change_password_next_sign_in_with_mfa=True)
        after = self._flags(ctx, target)
        if not all(after.values()):
            raise ActionFailed(f"Graph accepted the change but {target.display}'s password profile still reads "
                               f"{after}; require the change in the Entra admin center (Users > Reset password)")
        changed = [flag for flag in FLAGS if not before[flag]]
        return Outcome(f"{target.display} must change password at next sign-in, with MFA",
                       {"user": target.id, "previous": before, "changed": changed})

    def undo(self, ctx: ActionContext, target: Target, recorded: dict[str, Any]) -> Outcome:
        if recorded.get("found"):
            raise NotReversible(f"{target.display} already had to change password when the responder looked; it "
                                "did not set that, so undo leaves it")
        changed = [flag for flag in recorded.get("changed", list(FLAGS)) if flag in FLAGS]
        current = self._flags(ctx, target)
        still = [flag for flag in changed if current[flag]]
        if not still:
            return Outcome(f"{target.display} no longer has to change password (changed already, or cleared by "
                           "someone); nothing to undo", {"user": target.id, "cleared": []}, already_done=True)
        graph = ctx.clients.graph_customer(target.tenant)
        with permanent_errors(f"clearing the password-change requirement of {target.display}"):
            graph.update_user(target.id,
                              force_change_password_next_sign_in=False if FLAGS[0] in still else None,
                              force_change_password_next_sign_in_with_mfa=False if FLAGS[1] in still else None)
        return Outcome(f"{target.display} no longer has to change password at next sign-in",
                       {"user": target.id, "cleared": still})


ACTION = RequireAdminPasswordChange()
