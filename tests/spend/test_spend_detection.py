"""Issue 14 done-means: `detect --once` on the default scenario raises the spike, cap, new-meter and
micro-fraud alerts for the named customers and nothing for the others, through the billing export
(real MSAL, httpx, TLS and Azurite against the sandbox); a second run writes nothing and raises
nothing; the series is refreshed again only when SPEND_REFRESH_HOURS have passed.
"""

from __future__ import annotations

from typing import Any

from devhost.azurite import Azurite
from sandbox import ids
from sandbox.core import Sandbox
from shared.detection.jobs import DetectionRuntime, run_once
from shared.names import ALERTS_TABLE
from shared.settings import load_settings
from shared.spend.detect import SPEND_DETECTORS, last_refresh
from tests.conftest import REPO_ROOT, settings_env


def spend_alerts(runtime: DetectionRuntime) -> list[dict[str, Any]]:
    return [e for page in runtime.store.query(ALERTS_TABLE, "kind eq 'alert'") for e in page.entities
            if e.get("source") in SPEND_DETECTORS]


def exports(sandbox: Sandbox) -> int:
    return sum(1 for r in sandbox.requests("graph") if r.method == "POST" and "/billing/usage/unbilled/" in r.path)


def test_detect_once_raises_the_four_spend_alerts_for_the_named_customers_only(azurite: Azurite,
                                                                               fresh_sandbox: Sandbox) -> None:
    settings = load_settings(settings_env(azurite, **fresh_sandbox.app_settings()),
                             local_settings=REPO_ROOT / "does-not-exist.json")
    runtime = DetectionRuntime.from_settings(settings)

    run = run_once(runtime)

    assert not run.failed and all(not run.detectors[d].errors for d in SPEND_DETECTORS), run.as_dict()
    rows = spend_alerts(runtime)
    found = {(r["source"], r["subscription_id"] or r["customer_tenant_id"]) for r in rows}
    assert found == {
        ("spend_spike", ids.SUB_LITWARE_PROD),
        ("spend_new_subscription", ids.SUB_ADATUM_NEW),
        ("spend_new_meters", ids.SUB_ADATUM_NEW),
        ("spend_micro_fraud", f"reseller-{ids.RESELLER_PROSEWARE_MPN}"),
    }
    spike = next(r for r in spend_alerts(runtime) if r["source"] == "spend_spike")
    assert spike["customer_tenant_id"] == ids.CUSTOMER_LITWARE and spike["respond_state"] == "pending"
    assert spike["category"] == "spend_spike" and "Litware" in spike.get("customer_name", "Litware")
    assert exports(fresh_sandbox) == 2  # last and current month
    refreshed = last_refresh(runtime.store)
    assert refreshed is not None

    again = run_once(runtime)

    assert exports(fresh_sandbox) == 2  # not due: SPEND_REFRESH_HOURS have not passed
    assert last_refresh(runtime.store) == refreshed
    assert not set(SPEND_DETECTORS) & set(again.detectors), again.as_dict()  # no new series: nothing re-judged
    assert {(r["RowKey"], r["version"]) for r in spend_alerts(runtime)} == {
        (r["RowKey"], r["version"]) for r in rows}


def test_the_digest_shows_each_spend_alert_s_daily_spend_as_a_chart(azurite: Azurite, fresh_sandbox: Sandbox) -> None:
    import base64

    from shared.operations.digest import send_digest
    from shared.spend.chart import MARKED
    from tests.spend.test_spend_chart import decode

    settings = load_settings(settings_env(azurite, **fresh_sandbox.app_settings()),
                             local_settings=REPO_ROOT / "does-not-exist.json")
    runtime = DetectionRuntime.from_settings(settings)
    run_once(runtime)
    graph: Any = fresh_sandbox.services["graph"]
    before = len(graph.sent_mail())

    send_digest(settings, runtime.store)

    [sent] = graph.sent_mail()[before:]
    assert sent["contentType"] == "HTML" and "Daily spend of the subscriptions with a spend alert" in sent["content"]
    charts = sent["attachments"]
    with_series = [r for r in spend_alerts(runtime) if r["source"] != "spend_micro_fraud"]  # a group has no series
    assert len(charts) == len(with_series) == 3
    for chart in charts:
        assert chart["isInline"] and f'src="cid:{chart["contentId"]}"' in sent["content"]
        _, _, rows = decode(base64.b64decode(chart["contentBytes"]))
        assert any(tuple(row[i:i + 3]) == MARKED for row in rows for i in range(0, len(row), 3))
