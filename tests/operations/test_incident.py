"""The incident record: one model, three renderings, from a real respond run against the sandbox.

The HTML is checked in a real headless Chromium (Debian's, driven by Playwright): what a reader
sees (the timeline rows, the totals), that hostile alert text stays text, and that it prints.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devhost.azurite import Azurite
from sandbox import ids
from sandbox.core import Sandbox
from shared.alerts import row_key
from shared.names import ALERTS_TABLE, LEDGER_TABLE
from shared.operations.incident import (
    INCIDENT_RECORD_VERSION,
    LIST_PRICES,
    IncidentNotFound,
    build_incident,
    live_vm_lookup,
    render,
)
from shared.response.jobs import handle_respond_message
from tests.response.respond_support import MINING_KEY, Stage, stage, take_job

HOSTILE = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned=2">**bold** | pipe'


@pytest.fixture
def responded(azurite: Azurite, fresh_sandbox: Sandbox) -> Stage:
    """The default scenario's mining alert responded to; one VM approved (stopped), the suspension rejected."""
    st = stage(azurite, fresh_sandbox)
    _job, body = take_job(st)
    responder = st.responder()
    handle_respond_message(body, responder=responder)
    pending = {(r.action, r.target.id): r for r in responder.list_actions(pending_only=True, alert=MINING_KEY)}
    responder.approve(pending[("stop_resources", ids.MINING_VM_1)].action_id, "local:alice")
    responder.reject(pending[("suspend_subscription", ids.PLAN_FABRIKAM)].action_id, "local:bob", "not yet")
    return st


def _record(st: Stage, **kwargs: Any) -> dict[str, Any]:
    lookup = live_vm_lookup(st.settings, st.store, ids.CUSTOMER_FABRIKAM)
    return build_incident(st.store, ids.MINING_ALERT_EVENT_ID, vm_lookup=lookup, **kwargs).as_json()


def test_the_record_has_detection_every_action_and_decision_in_one_timeline_and_an_estimate(
        responded: Stage) -> None:
    doc = _record(responded)
    assert doc["incident_record_version"] == INCIDENT_RECORD_VERSION
    assert doc["alert"]["key"] == MINING_KEY and doc["detection"]["source_name"]
    ledger = {r.action_id for r in responded.responder().list_actions(alert=MINING_KEY)}
    assert {a["id"] for a in doc["actions"]} == ledger  # every ledger row, none dropped
    kinds = [e["kind"] for e in doc["timeline"]]
    assert kinds.count("decision-approve") == 1 and kinds.count("decision-reject") == 1
    assert "action-succeeded" in kinds and "action-planned" in kinds
    times = [e["at"] for e in doc["timeline"] if e["at"]]
    assert times == sorted(times, key=lambda t: t)  # one ordered timeline
    approve = next(e for e in doc["timeline"] if e["kind"] == "decision-approve")
    assert approve["who"] == "local:alice"
    # planned by the policy rule, even when an operator decided the row later
    assert {e["who"] for e in doc["timeline"] if e["kind"] == "action-planned"} == {"policy:crypto-mining-high"}
    # the affected VMs and the investigation's principals
    resources = {r["id"].lower() for r in doc["affected"]["resources"]}
    assert ids.MINING_VM_1.lower() in resources and ids.MINING_VM_2.lower() in resources
    assert not {r["type"] for r in doc["affected"]["resources"]} & {"alert", "notification", "plan"}
    assert {p["display"] for p in doc["affected"]["principals"]} >= {"mallory@fabrikam.example"}
    assert doc["investigation"]["ran"] and doc["investigation"]["findings"]
    # cost: sized through ARM, priced from the dated table, labelled an estimate
    cost = doc["cost_estimate"]
    assert cost["kind"] == "estimate" and cost["prices_as_of"] and "list prices" in cost["basis"]
    vm1 = next(line for line in cost["lines"] if line["resource_id"].lower() == ids.MINING_VM_1.lower())
    assert vm1["size"] == "Standard_NC24ads_A100_v4" and vm1["price_per_hour"] == LIST_PRICES[
        "standard_nc24ads_a100_v4"] and not vm1["running_now"]
    vm2 = next(line for line in cost["lines"] if line["resource_id"].lower() == ids.MINING_VM_2.lower())
    assert vm2["running_now"]  # its stop is still waiting for approval: the meter still runs
    assert cost["total"] == pytest.approx(sum(line["estimate"] for line in cost["lines"]), abs=0.02)
    assert cost["total"] > 0 and "issue 14" in cost["spend_note"]
    # the exception: a first incident of Fabrikam, not yet resolved as fraud, with what is missing
    exception = doc["exception_eligibility"]
    assert exception["verdict"] == "possibly eligible" and exception["policy"]["effective_from"] == "2023-04-01"
    first = next(c for c in exception["checks"] if c["check"].startswith("first incident"))
    assert first["met"] is True
    assert any("resolved as fraud" in m for m in exception["missing"])
    assert any("submitted" in m for m in exception["missing"])
    assert doc["quota_hygiene"]["read"] is False
    json.dumps(doc)  # JSON-ready as it is


def test_unknown_outcome_fields_of_other_actions_are_shown_never_dropped(responded: Stage) -> None:
    row = next(e for e in responded.store.list_partition(LEDGER_TABLE, row_key(MINING_KEY))
               if e["action"] == "notify")
    responded.store.upsert(LEDGER_TABLE, {"PartitionKey": row["PartitionKey"], "RowKey": row["RowKey"],
                                          "ticket_id": "SR-12345", "data": json.dumps({"case": "CASE-9"})})
    doc = _record(responded)
    notify = next(a for a in doc["actions"] if a["action"] == "notify")
    assert notify["other"] == {"ticket_id": "SR-12345"} and notify["data"] == {"case": "CASE-9"}
    md = render(build_incident(responded.store, MINING_KEY), "md")
    assert "other.ticket\\_id: SR-12345" in md and "case: CASE-9" in md
    page = render(build_incident(responded.store, MINING_KEY), "html")
    assert "SR-12345" in page and "CASE-9" in page


def test_an_earlier_incident_of_the_customer_makes_it_not_eligible(responded: Stage) -> None:
    alert = responded.store.get(ALERTS_TABLE, ids.CUSTOMER_FABRIKAM, row_key(MINING_KEY))
    assert alert is not None
    earlier = {**{k: v for k, v in alert.items() if not k.startswith("odata")},
               "RowKey": row_key("partner_center:old-1"), "alert_id": "old-1",
               "first_observed_at": alert["first_observed_at"].replace(year=2024),
               "detected_at": alert["detected_at"].replace(year=2024), "is_test": False, "resolved_reason": "fraud"}
    responded.store.upsert(ALERTS_TABLE, earlier)
    exception = _record(responded)["exception_eligibility"]
    assert exception["verdict"] == "not eligible"
    assert exception["earlier_incidents"][0]["key"] == "partner_center:old-1"


def test_an_unknown_alert_is_a_clear_not_found(responded: Stage) -> None:
    with pytest.raises(IncidentNotFound, match="no alert 'nope'"):
        build_incident(responded.store, "nope")


# --- the HTML in a real browser ---------------------------------------------------------------------

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is missing: run `make install` (it installs it) or apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        try:
            yield chromium
        finally:
            chromium.close()


def test_the_html_reads_right_in_chromium_keeps_hostile_text_as_text_and_prints(
        responded: Stage, browser: Any, tmp_path: Path) -> None:
    alert = responded.store.get(ALERTS_TABLE, ids.CUSTOMER_FABRIKAM, row_key(MINING_KEY))
    assert alert is not None
    responded.store.upsert(ALERTS_TABLE, {"PartitionKey": alert["PartitionKey"], "RowKey": alert["RowKey"],
                                          "description": HOSTILE, "display_name": HOSTILE,
                                          "additional_details": json.dumps({"note": HOSTILE})})
    record = build_incident(responded.store, ids.MINING_ALERT_EVENT_ID,
                            vm_lookup=live_vm_lookup(responded.settings, responded.store, ids.CUSTOMER_FABRIKAM))
    doc = record.as_json()
    page_html = render(record, "html")
    assert "<script" not in page_html and "<img" not in page_html
    requests: list[str] = []
    page = browser.new_page()
    try:
        page.on("request", lambda r: requests.append(r.url))
        page.set_content(page_html, wait_until="load")
        assert page.evaluate("window.__pwned") is None  # nothing ran
        assert page.locator("script, img").count() == 0
        assert HOSTILE in page.locator("h1").inner_text()  # shown as the text it is
        rows = page.locator("table.timeline tbody tr")
        assert rows.count() == len(doc["timeline"])
        texts = rows.all_inner_texts()
        assert any("approve" in t and "local:alice" in t for t in texts)
        assert any("reject" in t and "local:bob" in t for t in texts)
        total = page.locator("#cost-total").inner_text()
        assert total == f"USD {doc['cost_estimate']['total']:,.2f}"
        assert "ESTIMATE" in page.locator("#cost").locator("xpath=following-sibling::div[1]").inner_text()
        assert page.locator("#verdict").inner_text() == "possibly eligible"
        assert page.locator("table.actions tbody tr").count() == len(doc["actions"])
        assert requests == []  # self-contained: nothing fetched
        page.emulate_media(media="print")
        assert page.evaluate("getComputedStyle(document.body).maxWidth") == "none"
        pdf = page.pdf(format="A4", print_background=True)
    finally:
        page.close()
    assert pdf.startswith(b"%PDF") and len(pdf) > 5000
    pages = pdf.count(b"/Type /Page") - pdf.count(b"/Type /Pages")
    assert pages >= 2  # the whole record, across pages
    (tmp_path / "incident.pdf").write_bytes(pdf)


def test_quota_far_above_use_in_the_affected_regions_is_recommended_in_the_record(responded: Stage) -> None:
    from shared.operations.quota import live_reader

    record = build_incident(responded.store, MINING_KEY, quota_reader=live_reader(responded.settings),
                            vm_lookup=live_vm_lookup(responded.settings, responded.store, ids.CUSTOMER_FABRIKAM))
    quota = record.as_json()["quota_hygiene"]
    assert quota["read"] and quota["errors"] == []
    found = quota["recommendations"]
    assert found and all(r["subscription_id"] == ids.SUB_FABRIKAM_PROD and r["location"] == "eastus" for r in found)
    assert found[0]["gpu"] and found[0]["peak_used"] <= found[0]["limit"] // 4  # GPU families first
    assert all(r["unused"] >= 20 for r in found)
    page = render(record, "html")
    assert html.escape(found[0]["recommendation"]) in page
    offline = build_incident(responded.store, MINING_KEY, quota_reader=live_reader(responded.settings))
    assert offline.as_json()["quota_hygiene"]["read"] is False  # no VM read: no region known


def test_cli_exports_markdown_to_stdout_html_to_a_file_and_refuses_an_unknown_alert(
        responded: Stage, tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    from tests.conftest import REPO_ROOT

    env = {**os.environ, **responded.env, "FRAUD_RESPONDER_LOCAL_SETTINGS": str(REPO_ROOT / "does-not-exist.json")}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "shared.cli", "incident", "export", *args], env=env,
                              capture_output=True, text=True, check=False, timeout=180, cwd=REPO_ROOT)

    md = cli(ids.MINING_ALERT_EVENT_ID, "--format", "md")
    assert md.returncode == 0, md.stderr
    assert md.stdout.startswith("# Incident record: alert partner\\_center:") and "## Timeline" in md.stdout
    assert "Standard\\_NC24ads\\_A100\\_v4" in md.stdout  # sized live through ARM
    out = tmp_path / "incident.html"
    page = cli(MINING_KEY, "--format", "html", "--out", str(out))
    assert page.returncode == 0 and page.stdout == "" and "written to" in page.stderr
    assert out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    as_json = json.loads(cli(MINING_KEY, "--format", "json", "--offline").stdout)
    assert as_json["cost_estimate"]["lines"][0]["note"].startswith("VM size not read")
    missing = cli("no-such-alert")
    assert missing.returncode == 1 and "no alert 'no-such-alert'" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1
    assert cli(MINING_KEY, "--format", "pdf").returncode == 2
