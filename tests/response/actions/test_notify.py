"""notify against the Graph stand-in (sendMail, app-only), Key Vault and the webhook sink; throttling on Azurite."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

import pytest

from devhost.azurite import Azurite
from sandbox import ids
from sandbox.core import Sandbox
from shared.alerts import Alert
from shared.response.actions.base import ActionContext, ActionFailed, NotReversible
from shared.response.actions.notify import ACTION
from shared.response.contacts import set_contacts
from shared.response.notify_message import Suppressed, compose
from tests.response.actions.partner_support import again, context, store_alert
from tests.response.actions.sandbox_context import pc_alert

HOOK_SECRET = "notify-webhook-url"
INVESTIGATION = {
    "window": {"start": "2024-05-01T08:00:00Z", "end": "2024-05-01T12:00:00Z"},
    "users": [{"id": ids.COMPROMISED_USER_ID, "display": ids.COMPROMISED_USER_UPN,
               "operations": [{"operation": "Microsoft.Compute/virtualMachines/write", "resource": ids.MINING_VM_1}]}],
    "service_principals": [{"id": ids.ROGUE_SP_ID, "display": "batch-render-tool", "app_id": ids.ROGUE_APP_CLIENT_ID,
                            "operations": ["Microsoft.Compute/virtualMachines/write"]}],
    "resources": {}, "events_examined": 12,
}
SUMMARY = {
    "rule": "crypto-mining-high", "rule_description": "Crypto-mining: contain on approval.",
    "done": [{"id": "a1", "action": "update_status", "target": "alert status", "summary": "set to investigating"}],
    "pending": [{"id": "act-stop-1", "action": "stop_resources", "target": "vm-gpu-01"},
                {"id": "act-suspend-1", "action": "suspend_subscription", "target": "Azure plan"}],
    "failed": [{"id": "act-rev-1", "action": "revoke_sessions", "target": "mallory", "error": "HTTP 403"}],
}


def mail(sandbox: Sandbox) -> list[dict[str, Any]]:
    service: Any = sandbox.services["graph"]
    return list(service.sent_mail())


def hooks(sandbox: Sandbox, name: str) -> list[dict[str, Any]]:
    service: Any = sandbox.services["graph"]
    return list(service.hook_posts(name))


def app_logs(caplog: pytest.LogCaptureFixture) -> str:
    """Everything the app and its libraries logged (the sandbox's own access log is the receiver's)."""
    return "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith("sandbox"))


def mining(sandbox: Sandbox) -> Alert:
    return pc_alert(sandbox, ids.MINING_ALERT_EVENT_ID)


def notify(ctx: ActionContext) -> Any:
    [target] = ACTION.plan(ctx)
    return ACTION.execute(ctx, target)


def test_the_email_says_what_where_how_bad_what_was_done_and_what_waits(azurite: Azurite,
                                                                        fresh_sandbox: Sandbox) -> None:
    alert = mining(fresh_sandbox)
    ctx = context(azurite, fresh_sandbox, alert, "notify", investigation=INVESTIGATION, summary=SUMMARY, _version=3)
    [target] = ACTION.plan(ctx)
    assert (target.kind, target.id) == ("notification", f"{alert.key}#v3")
    assert ACTION.verify(ctx, target) is False
    outcome = ACTION.execute(ctx, target)

    [sent] = mail(fresh_sandbox)
    assert sent["from"] == ids.NOTIFY_SENDER
    assert sent["to"] == [ids.SECURITY_CONTACT]
    assert sent["subject"] == (f"[High] Crypto-mining detected in Fabrikam, Inc. / Fabrikam Production "
                               f"(alert {ids.MINING_ALERT_EVENT_ID})")
    body = sent["content"]
    for expected in (
        "Network connections to crypto mining pools", "Hits: 42", f"tenant {ids.CUSTOMER_FABRIKAM}",
        ids.SUB_FABRIKAM_PROD, ids.MINING_VM_1, ids.MINING_VM_2,
        f"https://portal.azure.com/#@{ids.CUSTOMER_FABRIKAM}/resource{ids.MINING_VM_2}",
        "Severity high, confidence high",
        ids.COMPROMISED_USER_UPN, "batch-render-tool", ids.ROGUE_APP_CLIENT_ID, "12 events examined",
        'rule "crypto-mining-high"', "update_status on alert status: set to investigating",
        "fraud-responder actions approve act-stop-1", "fraud-responder actions approve act-suspend-1",
        "revoke_sessions on mallory: HTTP 403",
        "Global admins in the customer's tenant change their passwords",
        "password-recovery e-mail addresses and phone numbers", "multi-factor authentication",
        "last week", "Legitimate", "https://partner.microsoft.com/dashboard",
    ):
        assert expected in body, expected
    assert outcome.data["recipients"] == [ids.SECURITY_CONTACT]
    assert outcome.summary.startswith("sent to 1 recipient")
    # Redelivery after a crash before the ledger write: verify sees it and nothing is sent again.
    assert ACTION.verify(ctx, target) is True  # so the engine calls nothing again
    assert len(mail(fresh_sandbox)) == 1


def test_the_customers_contacts_are_added_when_the_policy_asks(azurite: Azurite, fresh_sandbox: Sandbox) -> None:
    alert = mining(fresh_sandbox)
    ctx = context(azurite, fresh_sandbox, alert, "notify", to=("partner", "customer"))
    set_contacts(ctx.clients.store, ids.CUSTOMER_FABRIKAM,
                 emails=["secops@fabrikam.example", "SOC@contoso-csp.example"])
    notify(ctx)
    [sent] = mail(fresh_sandbox)
    assert sent["to"] == [ids.SECURITY_CONTACT, "secops@fabrikam.example"]  # duplicates dropped, any case


def test_a_customer_without_contacts_falls_back_to_the_partner(azurite: Azurite, fresh_sandbox: Sandbox) -> None:
    ctx = context(azurite, fresh_sandbox, mining(fresh_sandbox), "notify", to=("customer",))
    outcome = notify(ctx)
    assert [m["to"] for m in mail(fresh_sandbox)] == [[ids.SECURITY_CONTACT]]
    assert any("no contacts on file" in note for note in outcome.data["notes"])


def test_alerts_in_the_window_are_counted_then_announced_by_the_next_message(azurite: Azurite,
                                                                              fresh_sandbox: Sandbox) -> None:
    first = mining(fresh_sandbox)
    ctx = context(azurite, fresh_sandbox, first, "notify", throttle_hours=24)
    notify(ctx)
    second = replace(first, id=f"{ids.SUB_FABRIKAM_PROD}_vm-gpu-02")
    held = notify(again(ctx, second))
    assert held.summary.startswith("throttled: 1 suppressed since ")
    assert held.data["throttled"] is True
    assert len(mail(fresh_sandbox)) == 1
    # Redelivered, the held-back one is neither counted twice nor sent.
    [second_target] = ACTION.plan(again(ctx, second))
    assert ACTION.verify(again(ctx, second), second_target) is True  # so the engine calls nothing again

    third = replace(first, id=f"{ids.SUB_FABRIKAM_PROD}_vm-gpu-03")
    assert notify(again(ctx, third)).summary.startswith("throttled: 2 suppressed")
    fourth = replace(first, id=f"{ids.SUB_FABRIKAM_PROD}_vm-gpu-04")
    sent = notify(again(ctx, fourth, throttle_hours=0))  # a rule that wants every message
    assert sent.data["suppressed_announced"] == 2
    last = mail(fresh_sandbox)[-1]["content"]
    assert "2 further alerts for this subscription were suppressed since " in last
    assert f"{second.key}, {third.key}" in last
    # The count starts again after a message went out.
    fifth = replace(first, id=f"{ids.SUB_FABRIKAM_PROD}_vm-gpu-05")
    assert notify(again(ctx, fifth, throttle_hours=24)).summary.startswith("throttled: 1 suppressed")


def test_what_another_instance_held_back_meanwhile_is_counted_not_overwritten(azurite: Azurite,
                                                                              fresh_sandbox: Sandbox) -> None:
    # This process remembers the throttle row as it wrote it; another instance changes it after that.
    import json

    from shared.names import CHECKPOINTS_TABLE
    from shared.response.notify_throttle import THROTTLE_PARTITION, throttle_row

    first = mining(fresh_sandbox)
    ctx = context(azurite, fresh_sandbox, first, "notify", throttle_hours=24)
    notify(ctx)
    elsewhere = [f"{first.key}-elsewhere-{i}#v1" for i in range(3)]

    def held_elsewhere(entity: dict[str, Any]) -> dict[str, Any]:
        return {**entity, "suppressed": 3, "suppressed_targets": json.dumps(elsewhere)}

    ctx.clients.store.update_with_retry(CHECKPOINTS_TABLE, THROTTLE_PARTITION, throttle_row(first, test=False),
                                        held_elsewhere)

    second = replace(first, id=f"{ids.SUB_FABRIKAM_PROD}_vm-gpu-02")
    assert notify(again(ctx, second)).summary.startswith("throttled: 4 suppressed")
    fourth = replace(first, id=f"{ids.SUB_FABRIKAM_PROD}_vm-gpu-04")
    assert notify(again(ctx, fourth, throttle_hours=0)).data["suppressed_announced"] == 4
    assert len(mail(fresh_sandbox)) == 2


def test_other_subscriptions_and_types_are_throttled_apart(azurite: Azurite, fresh_sandbox: Sandbox) -> None:
    alert = mining(fresh_sandbox)
    ctx = context(azurite, fresh_sandbox, alert, "notify", throttle_hours=24)
    notify(ctx)
    other_type = replace(alert, id="x-1", type="VirtualMachineDeploymentAnomaly")
    other_subscription = replace(alert, id="x-2", subscription_id=ids.SUB_NORTHWIND_DEV)
    assert not notify(again(ctx, other_type)).data["throttled"]
    assert not notify(again(ctx, other_subscription)).data["throttled"]
    assert len(mail(fresh_sandbox)) == 3


def test_test_alerts_are_marked_and_never_throttled_with_real_ones(azurite: Azurite, fresh_sandbox: Sandbox) -> None:
    alert = mining(fresh_sandbox)
    ctx = context(azurite, fresh_sandbox, alert, "notify", throttle_hours=24)
    notify(ctx)
    test_alert = replace(alert, id="test-1", is_test=True)
    outcome = notify(again(ctx, test_alert, test=True))
    assert not outcome.data["throttled"]
    sent = mail(fresh_sandbox)[-1]
    assert sent["subject"].startswith("[TEST] [High] Crypto-mining detected")
    assert "THIS IS A TEST ALERT" in sent["content"]
    # ... and a real alert is still throttled by the first real message, not freed by the test.
    assert notify(again(ctx, replace(alert, id="real-2"))).data["throttled"]


def test_without_any_recipient_it_fails_and_says_what_to_set(azurite: Azurite, fresh_sandbox: Sandbox) -> None:
    ctx = context(azurite, fresh_sandbox, mining(fresh_sandbox), "notify", env={"SECURITY_CONTACTS": ""})
    [target] = ACTION.plan(ctx)
    with pytest.raises(ActionFailed, match="SECURITY_CONTACTS is empty"):
        ACTION.execute(ctx, target)
    assert mail(fresh_sandbox) == []


def test_a_refused_send_fails_and_does_not_hold_back_the_next_alert(azurite: Azurite, fresh_sandbox: Sandbox) -> None:
    alert = mining(fresh_sandbox)
    broken = context(azurite, fresh_sandbox, alert, "notify", env={"NOTIFY_SENDER": "nobody@contoso-csp.example"},
                     throttle_hours=24)
    with pytest.raises(ActionFailed, match=r"sending the notification e-mail from nobody@contoso-csp\.example"):
        notify(broken)
    fixed = context(azurite, fresh_sandbox, replace(alert, id="after-fix"), "notify", throttle_hours=24)
    fixed = ActionContext(settings=fixed.settings, alert=fixed.alert, params=fixed.params,
                          clients=broken.clients, actor=fixed.actor)  # the same throttle table
    outcome = notify(fixed)
    assert not outcome.data["throttled"]
    assert len(mail(fresh_sandbox)) == 1


def test_the_webhook_gets_a_short_text_and_its_url_stays_secret(azurite: Azurite, fresh_sandbox: Sandbox,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    vault: Any = fresh_sandbox.services["key_vault"]
    url = f"{fresh_sandbox.url('graph')}/_sandbox/hooks/soc-channel"
    vault.put(HOOK_SECRET, url)
    caplog.set_level(logging.DEBUG)
    ctx = context(azurite, fresh_sandbox, mining(fresh_sandbox), "notify", summary=SUMMARY,
                  env={"NOTIFY_WEBHOOK_SECRET_NAME": HOOK_SECRET})
    outcome = notify(ctx)
    [post] = hooks(fresh_sandbox, "soc-channel")
    text = post["body"]["text"]
    assert text.startswith("[High] Crypto-mining detected in Fabrikam, Inc.")
    assert "1 done, 2 waiting for approval, 1 failed" in text
    assert outcome.data["webhook"] == "posted"
    assert len(mail(fresh_sandbox)) == 1
    assert url not in repr(outcome) and "soc-channel" not in repr(outcome)
    assert "soc-channel" not in app_logs(caplog)


def test_a_failing_webhook_is_reported_without_sending_the_mail_twice(azurite: Azurite, fresh_sandbox: Sandbox,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    vault: Any = fresh_sandbox.services["key_vault"]
    vault.put(HOOK_SECRET, f"{fresh_sandbox.url('graph')}/_sandbox/no-such-hook/secret-token-123")
    caplog.set_level(logging.DEBUG)
    ctx = context(azurite, fresh_sandbox, mining(fresh_sandbox), "notify",
                  env={"NOTIFY_WEBHOOK_SECRET_NAME": HOOK_SECRET})
    outcome = notify(ctx)
    assert outcome.data["webhook"] == "failed: it answered HTTP 404"
    assert len(mail(fresh_sandbox)) == 1
    assert "secret-token-123" not in app_logs(caplog) and "secret-token-123" not in repr(outcome)


def test_webhook_only_failures_raise_so_the_job_is_retried_or_failed(azurite: Azurite,
                                                                      fresh_sandbox: Sandbox) -> None:
    vault: Any = fresh_sandbox.services["key_vault"]
    vault.put(HOOK_SECRET, "http://127.0.0.1:9/plain-http-is-refused")
    ctx = context(azurite, fresh_sandbox, mining(fresh_sandbox), "notify",
                  env={"NOTIFY_WEBHOOK_SECRET_NAME": HOOK_SECRET, "SECURITY_CONTACTS": ""})
    with pytest.raises(ActionFailed, match="does not hold an https:// URL") as caught:
        notify(ctx)
    assert "plain-http-is-refused" not in str(caught.value)
    vault.put(HOOK_SECRET, f"{fresh_sandbox.url('graph')}/_sandbox/hooks/ops")
    assert notify(ctx).summary == "posted to the webhook only"  # the released slot is free again
    assert len(hooks(fresh_sandbox, "ops")) == 1


def test_a_notification_cannot_be_undone(azurite: Azurite, fresh_sandbox: Sandbox) -> None:
    ctx = context(azurite, fresh_sandbox, mining(fresh_sandbox), "notify")
    [target] = ACTION.plan(ctx)
    with pytest.raises(NotReversible):
        ACTION.undo(ctx, target, {})


def test_the_version_comes_from_the_stored_alert_when_the_engine_does_not_say(azurite: Azurite,
                                                                              fresh_sandbox: Sandbox) -> None:
    alert = mining(fresh_sandbox)
    ctx = context(azurite, fresh_sandbox, alert, "notify")
    store_alert(ctx, alert, version=4)
    [target] = ACTION.plan(ctx)
    assert target.id == f"{alert.key}#v4"


# --- the message on its own ----------------------------------------------------------------------------


def test_messages_for_unknown_types_and_severities_still_read_well(fresh_sandbox: Sandbox) -> None:
    alert = replace(mining(fresh_sandbox), type="SomethingNew", severity="unknown", customer_name="",
                    subscription_name="", affected_resources=(), display_name="")
    message = compose(alert, suppressed=Suppressed(1, None, ("partner_center:a",)))
    assert message.subject == (f"[Severity unknown] Security alert: SomethingNew in {ids.CUSTOMER_FABRIKAM} / "
                               f"{ids.SUB_FABRIKAM_PROD} (alert {ids.MINING_ALERT_EVENT_ID})")
    assert "Affected resources: none named" in message.body
    assert "Nothing has been changed yet." in message.body
    assert "1 further alert for this subscription was suppressed since unknown: partner_center:a" in message.body


def test_a_spend_alert_shows_its_daily_spend_as_an_inline_chart_with_the_anomaly_in_red(
        azurite: Azurite, fresh_sandbox: Sandbox) -> None:
    import base64

    from shared.spend.chart import CHART_CONTENT_ID, MARKED
    from tests.spend.test_spend_chart import decode, pixel

    series = [{"day": f"2026-11-{d:02d}", "total": 100.0} for d in range(1, 30)] + [{"day": "2026-11-30",
                                                                                    "total": 750.0}]
    spike = replace(mining(fresh_sandbox), additional_details={
        "rule": "spend_spike", "series": series, "day": "2026-11-30", "baseline": {"median": 100.0}, "threshold": 250})
    notify(context(azurite, fresh_sandbox, spike, "notify", summary=SUMMARY))

    [sent] = mail(fresh_sandbox)
    assert sent["contentType"] == "HTML" and f'src="cid:{CHART_CONTENT_ID}"' in sent["content"]
    assert "Crypto-mining" in sent["content"]  # the same text, escaped into the HTML
    [chart] = sent["attachments"]
    assert chart["isInline"] and chart["contentId"] == CHART_CONTENT_ID and chart["contentType"] == "image/png"
    width, height, rows = decode(base64.b64decode(chart["contentBytes"]))
    assert MARKED in {pixel(rows, x, height - 12) for x in range(width - 30, width)}  # the last day, red

    fresh_sandbox.services["graph"].reset()  # type: ignore[attr-defined]
    notify(context(azurite, fresh_sandbox, mining(fresh_sandbox), "notify", summary=SUMMARY))
    [plain] = mail(fresh_sandbox)
    assert plain["contentType"] == "Text" and plain["attachments"] == []  # no series, no chart: plain text
