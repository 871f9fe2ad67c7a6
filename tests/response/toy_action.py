"""A toy action, registered from a test: proof that an action is one module plus one catalogue entry.

``quarantine_note`` writes a marker row beside the alert (kind ``toy-note``) saying which label the
policy asked for, and undo deletes it. ``SPEC`` is what the test hands to
``shared.response.catalogue.register``; nothing else in the app names this action.
"""

from __future__ import annotations

from typing import Any, ClassVar

from shared.alerts import row_key
from shared.names import ALERTS_TABLE
from shared.response.actions.base import ActionContext, Outcome, Target
from shared.response.catalogue import ActionSpec, ParamSpec

NAME = "quarantine_note"

SPEC = ActionSpec(
    NAME, "writes a quarantine marker beside the alert", order=15, reversible=True, containment=True,
    module=__name__, params={"label": ParamSpec("choice", "red", "the marker's colour", ("red", "amber"))},
)


def marker_row(ctx: ActionContext) -> tuple[str, str]:
    return ctx.alert.customer_tenant_id, "toy~" + row_key(ctx.alert.key)


class QuarantineNote:
    name: ClassVar[str] = NAME
    reversible: ClassVar[bool] = True

    def plan(self, ctx: ActionContext) -> list[Target]:
        return [Target(kind="alert", id=ctx.alert.key, display=f"marker on {ctx.alert.key}",
                       tenant=ctx.alert.customer_tenant_id)]

    def verify(self, ctx: ActionContext, target: Target) -> bool:
        return ctx.clients.store.get(ALERTS_TABLE, *marker_row(ctx)) is not None

    def execute(self, ctx: ActionContext, target: Target) -> Outcome:
        partition, row = marker_row(ctx)
        ctx.clients.store.upsert(ALERTS_TABLE, {"PartitionKey": partition, "RowKey": row, "kind": "toy-note",
                                                "label": str(ctx.params["label"])})
        return Outcome(f"marker {ctx.params['label']} written", {"label": ctx.params["label"]})

    def undo(self, ctx: ActionContext, target: Target, recorded: dict[str, Any]) -> Outcome:
        ctx.clients.store.delete(ALERTS_TABLE, *marker_row(ctx))
        return Outcome("marker removed")


ACTION = QuarantineNote()
