"""set_usage_budget against the Partner Center stand-in: plan from our spend series, set, verify, undo.

And through the engine: the budget source's NoSpendingBudget alert answered in dry-run (recorded,
nothing changed at Partner Center), then in enforce (set once, however often the job is delivered).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from devhost.azurite import Azurite
from sandbox import ids
from sandbox.core import Sandbox
from shared.alerts import Alert
from shared.intake.jobs import run_sync
from shared.intake.sync import SyncScope
from shared.response.actions.base import NotReversible
from shared.response.actions.set_usage_budget import ACTION
from shared.response.jobs import handle_respond_message
from shared.response.ledger import DRY_RUN, SUCCEEDED
from shared.sources.budgets import parse
from shared.spend.series import SpendDay, SpendSeries
from shared.storage.tables import TableStore
from tests.response.actions.partner_support import context
from tests.response.respond_support import policy, stage, take_job


def no_budget_alert(customer: str = ids.CUSTOMER_ADATUM, name: str = "Adatum") -> Alert:
    return parse({"id": f"{customer}:no-budget", "type": "NoSpendingBudget", "customerTenantId": customer,
                  "customerName": name, "severity": "informational", "status": "active",
                  "detectedAt": datetime.now(UTC).isoformat()})


def budget_of(sandbox: Sandbox, customer: str) -> float | None:
    service: Any = sandbox.services["partner_center"]
    found: float | None = service.budgets.get(customer)
    return found


def patches(sandbox: Sandbox) -> int:
    return sum(1 for r in sandbox.requests("partner_center") if r.method == "PATCH" and r.path.endswith("/usagebudget"))


def test_the_amount_is_a_multiple_of_recent_spend_and_set_once(azurite: Azurite, fresh_sandbox: Sandbox) -> None:
    ctx = context(azurite, fresh_sandbox, no_budget_alert(), "set_usage_budget", multiple=2.0)
    days = {}
    for n in range(30):  # 30 days at 40 a day = 1,200 a month
        day = SpendDay("bbbbbbbb-0012-4000-8000-000000000012", date.today() - timedelta(days=n + 1),
                       customer_id=ids.CUSTOMER_ADATUM, currency="USD")
        day.add(40.0, "Storage", "eastus", "Premium SSD Managed Disks")
        days[(day.subscription_id, day.day)] = day
    SpendSeries(TableStore(ctx.settings)).write(days)

    [target] = ACTION.plan(ctx)
    assert (target.kind, target.id, target.details["amount"]) == ("spending_budget", ids.CUSTOMER_ADATUM, 2400.0)
    assert "2 x the recent monthly spend of 1,200.00" in target.details["basis"]
    assert budget_of(fresh_sandbox, ids.CUSTOMER_ADATUM) is None  # planning changes nothing
    assert ACTION.verify(ctx, target) is False

    outcome = ACTION.execute(ctx, target)
    assert budget_of(fresh_sandbox, ids.CUSTOMER_ADATUM) == 2400.0
    assert outcome.data == {"previous_amount": None, "amount": 2400.0}
    assert ACTION.verify(ctx, target) is True  # a redelivery looks before acting
    assert ACTION.execute(ctx, target).already_done and patches(fresh_sandbox) == 1

    undone = ACTION.undo(ctx, target, outcome.data)
    assert budget_of(fresh_sandbox, ids.CUSTOMER_ADATUM) == 0.0 and "cannot delete a budget" in undone.summary


def test_a_budget_the_customer_already_has_is_kept_and_never_undone(azurite: Azurite, fresh_sandbox: Sandbox) -> None:
    ctx = context(azurite, fresh_sandbox, no_budget_alert(ids.CUSTOMER_FABRIKAM, "Fabrikam"), "set_usage_budget",
                  amount=900.0)
    [target] = ACTION.plan(ctx)
    assert ACTION.verify(ctx, target) is True
    outcome = ACTION.execute(ctx, target)
    assert outcome.already_done and outcome.data["found_amount"] == 5000.0 and patches(fresh_sandbox) == 0
    with pytest.raises(NotReversible, match="did not set it"):
        ACTION.undo(ctx, target, outcome.data)
    assert budget_of(fresh_sandbox, ids.CUSTOMER_FABRIKAM) == 5000.0


def test_undo_leaves_a_budget_someone_changed_since(azurite: Azurite, fresh_sandbox: Sandbox) -> None:
    ctx = context(azurite, fresh_sandbox, no_budget_alert(), "set_usage_budget", amount=700.0)
    [target] = ACTION.plan(ctx)
    outcome = ACTION.execute(ctx, target)
    ctx.clients.partner_center().update_usage_budget(ids.CUSTOMER_ADATUM, 950.0)  # an operator, in the portal
    with pytest.raises(NotReversible, match="someone changed it"):
        ACTION.undo(ctx, target, outcome.data)
    assert budget_of(fresh_sandbox, ids.CUSTOMER_ADATUM) == 950.0


def test_the_policy_answers_a_customer_without_a_budget_in_dry_run_then_for_real(
        azurite: Azurite, fresh_sandbox: Sandbox, tmp_path: Path) -> None:
    key = f"budget:{ids.CUSTOMER_ADATUM}:no-budget"
    for mode, state in (("dry-run", DRY_RUN), ("enforce", SUCCEEDED)):
        text = policy(("set_usage_budget", mode, "amount = 1000"), match='category = "budget_missing"')
        st = stage(azurite, fresh_sandbox, policy=text, tmp_path=tmp_path)
        assert run_sync(st.runtime, SyncScope(), trigger="test", sources=("budget",)).ok
        _job, body = take_job(st, key)

        handle_respond_message(body, responder=st.responder())
        handle_respond_message(body, responder=st.responder())  # delivered twice

        [row] = [r for r in st.responder().list_actions(alert=key) if r.action == "set_usage_budget"]
        assert row.state == state and row.target.details["amount"] == 1000.0
        if mode == "dry-run":
            assert budget_of(fresh_sandbox, ids.CUSTOMER_ADATUM) is None and patches(fresh_sandbox) == 0
    assert budget_of(fresh_sandbox, ids.CUSTOMER_ADATUM) == 1000.0 and patches(fresh_sandbox) == 1
