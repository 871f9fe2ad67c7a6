"""Issue 14 item 3: every customer's daily usage from Graph's partner billing export, streamed
into one table row per subscription-day. Real MSAL, httpx, TLS and Azurite against the sandbox's
export (202 -> operation polled with Retry-After -> manifest -> gzip JSON-lines blobs with SAS).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from devhost.azurite import Azurite
from sandbox import ids
from sandbox.billing import BillingData
from sandbox.core import Sandbox
from shared import factory
from shared.settings import Settings, load_settings
from shared.spend.export import BillingExportError, BillingManifest
from shared.spend.refresh import refresh_spend
from shared.spend.series import SpendSeries, fold
from tests.conftest import settings_env


def app_settings(azurite: Azurite, sandbox: Sandbox) -> Settings:
    return load_settings(settings_env(azurite, **sandbox.app_settings()))


def export_client(settings: Settings, sleeps: list[float] | None = None) -> Any:
    client = factory.billing_export(settings, factory.app_tokens(settings))
    if sleeps is not None:
        client._sleep = sleeps.append
    return client


def test_a_refresh_stores_one_row_per_subscription_day_with_its_breakdown(azurite: Azurite,
                                                                          fresh_sandbox: Sandbox) -> None:
    settings = app_settings(azurite, fresh_sandbox)
    store = factory.table_store(settings)
    sleeps: list[float] = []
    client = export_client(settings, sleeps)

    result = refresh_spend(client, SpendSeries(store), currency_code="USD")

    assert sleeps and all(s == 1.0 for s in sleeps)  # the operation's Retry-After, not a guess
    assert result.export.lines > 0 and result.export.skipped == 0 and result.fold.skipped == 0
    assert result.write.written == result.write.days > 0
    days = SpendSeries(store).days(ids.SUB_ADATUM_NEW)
    assert 1 <= len(days) <= 4  # a brand-new subscription: a few days only
    latest = days[-1]
    assert latest.customer_id == ids.CUSTOMER_ADATUM
    assert "NCads A100 v4 Series" in latest.by_subcategory and "swedencentral" in latest.by_region
    assert latest.total == pytest.approx(sum(latest.by_category.values()), abs=0.01)
    litware = SpendSeries(store).days(ids.SUB_LITWARE_PROD)
    assert len(litware) >= 28
    yesterday = litware[-1]
    ordinary = sorted(d.total for d in litware[:-1])[len(litware) // 2]
    assert yesterday.total > 4 * ordinary  # the scenario's spike is in the data
    proseware = SpendSeries(store).days(ids.PROSEWARE_SUB_1)
    assert proseware and proseware[0].reseller_mpn_id == ids.RESELLER_PROSEWARE_MPN


def test_a_second_refresh_over_unchanged_data_writes_nothing(azurite: Azurite, fresh_sandbox: Sandbox) -> None:
    settings = app_settings(azurite, fresh_sandbox)
    store = factory.table_store(settings)
    first = refresh_spend(export_client(settings, []), SpendSeries(store), currency_code="USD")
    second = refresh_spend(export_client(settings, []), SpendSeries(store), currency_code="USD")
    assert first.write.written > 0
    assert second.write.written == 0 and second.write.unchanged == first.write.days


def test_the_export_streams_lines_as_the_blob_arrives(azurite: Azurite, fresh_sandbox: Sandbox) -> None:
    settings = app_settings(azurite, fresh_sandbox)
    graph: Any = fresh_sandbox.services["graph"]
    graph.use_billing(BillingData.synthetic(subscriptions=50, days=20, resources_per_meter=5, seed=1,
                                            blob_lines=2000), running_polls=0)
    client = export_client(settings, [])
    manifest = client.wait(client.start(billing_period="last", currency_code="USD"))  # 10,000 lines
    assert len(manifest.blobs) > 1  # partitioned
    lines = client.line_items(manifest)
    first = next(lines)
    assert client.stats.blobs == 1 and client.stats.compressed_bytes < 600_000  # not the whole export
    assert first["EntitlementId"] and first["UsageDate"]
    rest = sum(1 for _ in lines)
    assert rest + 1 == client.stats.lines


def test_a_failed_export_is_an_error_that_says_it_is_retried(azurite: Azurite, fresh_sandbox: Sandbox) -> None:
    settings = app_settings(azurite, fresh_sandbox)
    graph: Any = fresh_sandbox.services["graph"]
    graph.fail_billing_exports("No data available")
    client = export_client(settings, [])
    with pytest.raises(BillingExportError, match=r"No data available.*next run"):
        client.wait(client.start(billing_period="current", currency_code="USD"))


def test_a_forged_blob_signature_is_refused_and_the_graph_token_never_reaches_the_blob_host(
        azurite: Azurite, fresh_sandbox: Sandbox) -> None:
    settings = app_settings(azurite, fresh_sandbox)
    client = export_client(settings, [])
    manifest = client.wait(client.start(billing_period="current", currency_code="USD"))
    forged = BillingManifest(manifest.id, manifest.root_directory, manifest.sas_token.replace("sig=", "sig=0"),
                             manifest.blobs)
    with pytest.raises(BillingExportError, match="HTTP 403"):
        list(client.line_items(forged))
    blob_requests = [r for r in fresh_sandbox.requests("graph") if r.path.startswith("/billingexports/")]
    assert blob_requests and not any("authorization" in {k.lower() for k in r.headers} for r in blob_requests)


def test_bad_lines_are_skipped_and_counted_never_stopping_the_others() -> None:
    good = {"EntitlementId": "S1", "UsageDate": "2026-11-30T00:00:00Z", "BillingPreTaxTotal": 2.5,
            "MeterCategory": "Virtual Machines", "ResourceLocation": "eastus", "MeterSubCategory": "Dsv5 Series"}
    lower_case = {"entitlementid": "S1", "usagedate": "2026-11-30", "billingpretaxtotal": 1}
    lines: list[dict[str, Any]] = [good, {"UsageDate": "2026-11-30"}, {**good, "BillingPreTaxTotal": "n/a"},
                                   lower_case, {**good}]
    from shared.spend.series import FoldStats

    stats = FoldStats()
    days = fold(lines, stats)
    assert stats.skipped == 2 and stats.lines == 3
    assert days[("s1", dt.date(2026, 11, 30))].total == 6.0
