"""remove_role_assignments: delete the Azure role assignments the implicated principals created.

Why: an attacker who takes over an account typically grants a principal of their own a role (often
Owner) so they keep access after the password is reset; Microsoft's guidance asks partners to review
RBAC access on the subscriptions and evict the attacker. The targets come from the investigation
(``role_assignments``: ``Microsoft.Authorization/roleAssignments/write`` events by the implicated
principals in the incident window), one ledger row per assignment.

Before deleting, the assignment as ARM shows it (name, scope, roleDefinitionId, principalId,
principalType, description, condition) is written down once per alert and target (``notes``: the
first observation wins), so undo can recreate it exactly, with the same name, even after a crash
between the ARM call and the ledger write. ``DELETE {scope}/providers/Microsoft.Authorization/
roleAssignments/{name}``; verify: the assignment no longer exists. One found already gone (someone
else removed it) is recorded as found and not touched; undo refuses such a row.

Undo: ``PUT`` with the same name and properties. An assignment that exists again (with the same
principal and role) is left as it is.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from shared.response.actions._errors import permanent_errors
from shared.response.actions.base import ActionContext, ActionFailed, NotReversible, Outcome, Target
from shared.response.actions.notes import read_note, write_note_once

logger = logging.getLogger(__name__)


class RemoveRoleAssignments:
    name: ClassVar[str] = "remove_role_assignments"
    reversible: ClassVar[bool] = True

    def plan(self, ctx: ActionContext) -> list[Target]:
        from shared.clients.arm import ROLE_ASSIGNMENT_ID

        if ctx.investigation is None:
            raise ActionFailed("remove_role_assignments needs the investigation (who did what in the incident "
                               "window); add the investigate action to the rule, or run it first")
        targets: dict[str, Target] = {}
        for entry in ctx.investigation.get("role_assignments", []):
            assignment_id = str(entry.get("id") or "")
            match = ROLE_ASSIGNMENT_ID.match(assignment_id)
            if match is None:
                logger.info("remove_role_assignments: alert %s: %r is not a role assignment id; skipped",
                            ctx.alert.key, assignment_id)
                continue
            targets.setdefault(assignment_id.lower(), Target(
                kind="role_assignment", id=assignment_id, tenant=ctx.alert.customer_tenant_id,
                display=f"role assignment {match['name']} at {match['scope']} (created by "
                        f"{entry.get('principal_display') or entry.get('principal')})",
                details={"scope": match["scope"], "created_by": entry.get("principal", ""),
                         "created_by_kind": entry.get("principal_kind", ""), "created_at": entry.get("time")}))
        return list(targets.values())

    def verify(self, ctx: ActionContext, target: Target) -> bool:
        """Done when the assignment no longer exists."""
        with permanent_errors(f"reading role assignment {target.id}"):
            return ctx.clients.arm(target.tenant).get_role_assignment(target.id) is None

    def execute(self, ctx: ActionContext, target: Target) -> Outcome:
        arm = ctx.clients.arm(target.tenant)
        with permanent_errors(f"reading role assignment {target.id}"):
            current = arm.get_role_assignment(target.id)
        if current is None:
            return Outcome(f"{target.display} no longer exists; nothing to remove", {"found_status": "absent"},
                           already_done=True)
        note = write_note_once(ctx.clients.store, self.name, ctx.alert, target, {"assignment": current.as_record()})
        with permanent_errors(f"deleting role assignment {target.id}"):
            arm.delete_role_assignment(target.id)
        recorded = note.get("assignment") or current.as_record()
        role = str(recorded.get("roleDefinitionId", "")).rsplit("/", 1)[-1]
        return Outcome(f"removed {target.display}: role {role} of {recorded.get('principalType') or 'principal'} "
                       f"{recorded.get('principalId')}", {"assignment": recorded})

    def undo(self, ctx: ActionContext, target: Target, recorded: dict[str, Any]) -> Outcome:
        from shared.clients.arm import RoleAssignment

        if recorded.get("found_status"):
            raise NotReversible("the role assignment was already gone when the responder looked; it did not remove "
                                "it, so undo does not create it")
        note = read_note(ctx.clients.store, self.name, ctx.alert, target) or {}
        # The note holds the first observation; the ledger's copy can be missing after a crash.
        saved = note.get("assignment") or recorded.get("assignment")
        if not isinstance(saved, dict) or not saved.get("roleDefinitionId") or not saved.get("principalId"):
            raise NotReversible("the responder has no record of the assignment as it was, so it cannot recreate it; "
                                "recreate it in the Azure portal if it should exist")
        wanted = RoleAssignment.from_record({**saved, "id": target.id})
        arm = ctx.clients.arm(target.tenant)
        with permanent_errors(f"recreating role assignment {target.id}"):
            current = arm.get_role_assignment(target.id)
            if current is not None:
                return Outcome(f"{target.display} exists again; left as it is",
                               {"assignment": current.as_record(), "recreated": False}, already_done=True)
            after = arm.create_role_assignment(wanted)
        return Outcome(f"recreated {target.display} as it was", {"assignment": after.as_record(), "recreated": True})


ACTION = RemoveRoleAssignments()
