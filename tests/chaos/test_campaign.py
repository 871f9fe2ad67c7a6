"""The fault campaign (make chaos), fast and seeded: 3 SIGKILLs of the host under injected faults.

The full campaign runs with ``make chaos``; this one proves the same figures on a smaller run, and
that each figure turns the result red when it is wrong.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from chaos.campaign import Campaign, CampaignOptions, CampaignReport, destructive_calls
from chaos.secrets import issued_secrets, scan
from sandbox import ids
from sandbox.core import RecordedRequest, Sandbox

VM = ids.MINING_VM_1


def recorded(service: str, method: str, path: str, status: int, body: bytes = b"") -> RecordedRequest:
    return RecordedRequest(service, method, path, {}, {}, body, status, time.time())


@pytest.mark.timeout(120)
def test_three_kills_under_faults_lose_nothing_and_act_once_per_target(tmp_path: Path) -> None:
    options = CampaignOptions(kills=3, seed=7, max_seconds=110, uptime=(1.0, 3.0), lease_seconds=5,
                              function_timeout="00:00:05", settle_seconds=60, fault_every=0.7, webhook_every=1.0,
                              poll_schedule="*/5 * * * * *", generated_alerts=10, generated_customers=3,
                              work_dir=tmp_path)
    started = time.monotonic()
    report = Campaign(options).run()
    text = report.render()

    assert report.kills == 3 and report.host_starts == 4, text
    assert sum(report.faults.values()) > 0 and report.webhooks_raised > 0, text
    assert report.served > 10 and report.stored == report.served and not report.missing, text
    # The scenario's mining alert (2 VMs + its subscription) and one streamed alert per kill.
    assert len(report.expected_targets) == 3 + 3, text
    assert all(report.destructive_calls.get(t, 0) >= 1 for t in report.expected_targets), text  # all contained
    assert set(report.destructive_calls) == set(report.expected_targets), text  # and nothing else touched
    assert report.secrets_checked > 5 and report.leaks == [] and report.log_bytes > 0, text
    # The host checks function keys: the registration's key (the receiver's own) opens the receiver.
    assert report.webhooks_delivered > 0 and report.webhooks_refused == 0, text
    assert time.monotonic() - started < 110
    assert all(report.destructive_calls[t] == 1 for t in report.expected_targets), text  # exactly once each
    assert report.rows_running == [], text
    assert report.settled and report.failures() == [], text
    assert "RESULT: OK" in text


def test_a_second_successful_call_on_a_target_fails_the_campaign() -> None:
    log = [recorded("arm", "POST", f"{VM}/deallocate", 202), recorded("arm", "POST", f"{VM}/deallocate", 202),
           recorded("arm", "POST", f"{VM}/deallocate", 429), recorded("arm", "POST", f"{VM}/start", 202),
           recorded("arm", "GET", VM, 200)]
    counts = destructive_calls(log)
    assert counts == {f"ARM {VM.lower()}": 2}  # throttled, start and read requests are not containment

    report = CampaignReport(settled=True, secrets_checked=1, destructive_calls=counts,
                            expected_targets=[f"ARM {VM.lower()}", f"ARM {ids.MINING_VM_2.lower()}"])
    problems = report.failures()
    assert any("2 successful destructive calls" in p for p in problems)
    assert any("0 successful destructive calls" in p and "vm-gpu-02" in p for p in problems)
    assert "RESULT: FAILED" in report.render()


def test_partner_center_suspend_counts_only_the_suspension() -> None:
    path = f"/v1/customers/{ids.CUSTOMER_FABRIKAM}/subscriptions/{ids.PLAN_FABRIKAM}"
    log = [recorded("partner_center", "PATCH", path, 200, b'{"status": "suspended"}'),
           recorded("partner_center", "PATCH", path, 200, b'{"status": "active"}'),
           recorded("partner_center", "PATCH", path, 400, b'{"status": "suspended"}'),
           recorded("partner_center", "GET", path, 200)]
    assert destructive_calls(log) == {f"Partner Center suspend {ids.PLAN_FABRIKAM.lower()}": 1}


def test_webhook_deliveries_refused_by_the_host_fail_the_campaign() -> None:
    report = CampaignReport(settled=True, secrets_checked=1, webhooks_raised=3, webhooks_refused=2)
    assert any("2 webhook delivery attempt(s) refused with 401/403" in p for p in report.failures())
    assert "2 attempts refused (401/403)" in report.render()


def test_the_host_process_gets_the_campaigns_keys_in_a_file_not_on_its_command_line(tmp_path: Path) -> None:
    from chaos.campaign import Campaign
    from devhost.keys import FunctionKeys

    campaign = Campaign(CampaignOptions())
    path = campaign.keys.save(tmp_path / "function-keys.json")
    assert path.stat().st_mode & 0o777 == 0o600
    loaded = FunctionKeys.load(path)
    assert loaded.allows("receive_webhook", "function", campaign.webhook_key)
    assert not loaded.allows("health_details", "function", "not-the-key")
    from chaos.host import HostProcess

    host = HostProcess({}, port=1, lease_seconds=1, log_path=tmp_path / "host.log", keys_path=path)
    assert host.keys_path == path and campaign.webhook_key not in repr(vars(host))


def test_rows_left_running_missing_alerts_and_no_settling_fail_the_campaign() -> None:
    report = CampaignReport(settled=False, secrets_checked=1, rows_running=["stop_resources vm-gpu-01"],
                            missing=["partner_center:x"], pending=["1 message(s) in alerts-respond"])
    problems = "\n".join(report.failures())
    assert "1 ledger row(s) left running" in problems
    assert "1 served alert(s) not stored" in problems
    assert "did not settle" in problems and "alerts-respond" in problems


def test_a_secret_in_a_log_is_found_and_never_printed(fresh_sandbox: Sandbox, tmp_path: Path) -> None:
    secrets = issued_secrets(fresh_sandbox, extra=[("webhook-key-0123456789", "webhook function key")])
    kinds = set(secrets.values())
    assert {"client secret", "refresh token", "webhook function key"} <= kinds
    key_vault: Any = fresh_sandbox.services["key_vault"]
    assert all(v.value in secrets for versions in key_vault.secrets.values() for v in versions)
    refresh_token = next(value for value, kind in secrets.items() if kind == "refresh token")
    log = tmp_path / "host.log"
    log.write_text(f"line one\nredeeming {refresh_token} now\nline three\n", encoding="utf-8")
    clean = tmp_path / "other.log"
    clean.write_text("nothing to see\n", encoding="utf-8")

    leaks = scan([log, clean], secrets)

    assert [(leak.kind, leak.file, leak.line) for leak in leaks] == [("refresh token", "host.log", 2)]
    assert refresh_token not in leaks[0].describe()
    report = CampaignReport(settled=True, secrets_checked=len(secrets), leaks=leaks)
    assert any("secret(s) found in the logs" in p for p in report.failures())
    assert refresh_token not in report.render()
