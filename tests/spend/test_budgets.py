"""Issue 14 item 1-2: every customer's month-to-date estimate against its budget, read and set
through Partner Center with the SAM (App+User) token: real MSAL, httpx and TLS against the stand-in.
"""

from __future__ import annotations

from typing import Any

import pytest

from devhost.azurite import Azurite
from sandbox import ids
from sandbox.core import Sandbox
from shared import factory
from shared.http import BadRequest
from shared.settings import load_settings
from tests.conftest import settings_env


def client(azurite: Azurite, sandbox: Sandbox) -> Any:
    settings = load_settings(settings_env(azurite, **sandbox.app_settings()))
    return factory.partner_center(settings, factory.partner_tokens(settings))


def test_usage_records_list_every_customer_with_its_budget_following_the_pages(azurite: Azurite,
                                                                              fresh_sandbox: Sandbox) -> None:
    pc = client(azurite, fresh_sandbox)
    fresh_sandbox.services["partner_center"].set_month_to_date(ids.CUSTOMER_LITWARE, 7000.0)  # type: ignore[attr-defined]
    records = {r.customer_id: r for r in pc.usage_records(page_size=3)}
    assert {ids.CUSTOMER_FABRIKAM, ids.CUSTOMER_LITWARE, ids.CUSTOMER_ADATUM, *ids.PROSEWARE_CUSTOMERS} <= set(records)
    litware = records[ids.CUSTOMER_LITWARE]
    assert litware.budget == 8000 and litware.total_cost == 7000 and litware.percent_used == 87.5
    assert records[ids.CUSTOMER_ADATUM].budget is None
    pages = [r for r in fresh_sandbox.requests("partner_center") if r.path.endswith("/usagerecords")]
    assert len(pages) == -(-len(records) // 3)  # every page followed, none twice


def test_a_budget_is_read_set_and_refused_when_it_is_not_a_number(azurite: Azurite, fresh_sandbox: Sandbox) -> None:
    pc = client(azurite, fresh_sandbox)
    assert pc.get_usage_budget(ids.CUSTOMER_ADATUM) is None
    assert pc.update_usage_budget(ids.CUSTOMER_ADATUM, 1200.0) == 1200.0
    assert pc.get_usage_budget(ids.CUSTOMER_ADATUM) == 1200.0
    with pytest.raises(BadRequest):
        pc.update_usage_budget(ids.CUSTOMER_ADATUM, -5.0)
