"""Issue 14 items 1-2: budget alerts through the same sync, dedupe and status handling as Microsoft's,
and Partner Center's usagerecords-thresholdExceeded webhook leading to them.

Real MSAL, httpx, TLS, Azurite and the signed webhook against the sandbox.
"""

from __future__ import annotations

from typing import Any

from devhost.azurite import Azurite
from sandbox import ids
from sandbox.core import Sandbox
from shared.alerts import from_entity
from shared.intake.jobs import IntakeRuntime, run_sync
from shared.intake.sync import SyncScope
from shared.names import ALERTS_TABLE
from shared.settings import load_settings
from tests.conftest import settings_env


def runtime(azurite: Azurite, sandbox: Sandbox) -> IntakeRuntime:
    return IntakeRuntime.from_settings(load_settings(settings_env(azurite, **sandbox.app_settings())))


def budget_alerts(rt: IntakeRuntime) -> dict[str, Any]:
    return {e["RowKey"]: from_entity(e) for page in rt.store.query(ALERTS_TABLE, "source eq 'budget'")
            for e in page.entities}


def test_thresholds_fire_once_per_month_and_customers_without_a_budget_are_named(azurite: Azurite,
                                                                                  fresh_sandbox: Sandbox) -> None:
    pc: Any = fresh_sandbox.services["partner_center"]
    pc.set_month_to_date(ids.CUSTOMER_LITWARE, 8500.0)  # 106 % of 8,000
    pc.set_month_to_date(ids.CUSTOMER_FABRIKAM, 100.0)  # 2 %
    rt = runtime(azurite, fresh_sandbox)

    first = run_sync(rt, SyncScope(), trigger="test", sources=("budget",))

    assert first.ok, first.as_dict()
    alerts = list(budget_alerts(rt).values())
    crossed = sorted((a.customer_tenant_id, a.additional_details["threshold"]) for a in alerts
                     if a.type == "BudgetThresholdExceeded")
    assert crossed == [(ids.CUSTOMER_LITWARE, 80.0), (ids.CUSTOMER_LITWARE, 100.0)]
    missing = {a.customer_tenant_id for a in alerts if a.type == "NoSpendingBudget"}
    assert {ids.CUSTOMER_ADATUM, ids.CUSTOMER_TAILSPIN, *ids.PROSEWARE_CUSTOMERS} <= missing
    assert ids.CUSTOMER_FABRIKAM not in missing and ids.CUSTOMER_LITWARE not in missing
    assert all(a.category in ("budget_threshold", "budget_missing") for a in alerts)
    assert first.results["budget"].enqueued == len(alerts)  # each answered by the policy

    pc.set_month_to_date(ids.CUSTOMER_LITWARE, 8600.0)  # still between 100 % and 150 %
    second = run_sync(rt, SyncScope(), trigger="test", sources=("budget",)).results["budget"]
    assert second.new == second.updated == second.enqueued == 0  # once per threshold per month

    pc.set_month_to_date(ids.CUSTOMER_LITWARE, 12100.0)  # 151 %
    third = run_sync(rt, SyncScope(), trigger="test", sources=("budget",)).results["budget"]
    assert third.new == 1 and any(a.severity == "high" for a in budget_alerts(rt).values())


def test_a_customer_given_a_budget_has_its_no_budget_alert_resolved(azurite: Azurite, fresh_sandbox: Sandbox) -> None:
    rt = runtime(azurite, fresh_sandbox)
    assert run_sync(rt, SyncScope(), trigger="test", sources=("budget",)).ok
    from shared import factory

    factory.partner_center(rt.settings, factory.partner_tokens(rt.settings)).update_usage_budget(
        ids.CUSTOMER_ADATUM, 900.0)
    run = run_sync(rt, SyncScope(), trigger="test", sources=("budget",)).results["budget"]
    adatum = {a.type: a for a in budget_alerts(rt).values() if a.customer_tenant_id == ids.CUSTOMER_ADATUM}
    assert adatum["NoSpendingBudget"].status == "resolved" and run.updated == 1


def test_the_thresholds_are_a_setting(azurite: Azurite, fresh_sandbox: Sandbox) -> None:
    fresh_sandbox.services["partner_center"].set_month_to_date(ids.CUSTOMER_LITWARE, 4400.0)  # type: ignore[attr-defined]
    rt = IntakeRuntime.from_settings(load_settings(settings_env(azurite, **fresh_sandbox.app_settings(),
                                                                BUDGET_THRESHOLDS="50, 90")))
    assert run_sync(rt, SyncScope(), trigger="test", sources=("budget",)).ok
    crossed = [a.additional_details["threshold"] for a in budget_alerts(rt).values()
               if a.type == "BudgetThresholdExceeded"]
    assert crossed == [50.0]  # 55 % of 8,000: past 50, not 90
