"""Structured logs: the alert, customer and action on every line a job writes, and no secret in any.

The end-to-end tests run the real sync and responder against the sandbox and Azurite and read
what the root logger's handlers received (pytest's caplog handler is one of them, as the
Functions worker's handler is in Azure).
"""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Iterator

import pytest

from devhost.azurite import Azurite
from sandbox import ids
from sandbox.core import Sandbox
from shared.logs import (
    ContextFilter,
    JsonFormatter,
    add_context,
    configure_logging,
    contextual,
    current_context,
    log_context,
)
from shared.response.jobs import handle_respond_message
from shared.response.ledger import AWAITING_APPROVAL, SUCCEEDED
from tests.response.respond_support import stage, take_job

log = logging.getLogger("tests.logs")


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A private logger writing JSON lines to a buffer through a ContextFilter."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(ContextFilter(in_message=False))
    logger = logging.getLogger(f"tests.logs.private.{id(buffer)}")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    try:
        yield logger, buffer
    finally:
        logger.removeHandler(handler)


def lines(buffer: io.StringIO) -> list[dict[str, str]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


# --- the context itself ---------------------------------------------------------------------------


def test_context_nests_and_is_restored_when_the_block_ends(captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, buffer = captured
    with log_context(job="respond", alert_id="a1", customer="c1"):
        logger.info("outer")
        with log_context(action="notify"):
            logger.info("inner")
        add_context(subscription="s1")
        logger.info("after %s", "add")
    logger.info("outside")
    out = lines(buffer)
    assert [o["message"] for o in out] == ["outer", "inner", "after add", "outside"]
    assert {k: out[1][k] for k in ("job", "alert_id", "customer", "action")} == {
        "job": "respond", "alert_id": "a1", "customer": "c1", "action": "notify"}
    assert "action" not in out[2] and out[2]["subscription"] == "s1"
    assert not {"job", "alert_id", "customer", "action", "subscription"} & out[3].keys()
    assert current_context() == {}


def test_add_context_outside_any_context_changes_nothing() -> None:
    add_context(alert_id="leak")
    assert current_context() == {}


def test_each_thread_has_its_own_context(captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, buffer = captured

    @contextual(job="worker")
    def work(alert: str, ready: threading.Barrier) -> None:
        add_context(alert_id=alert)
        ready.wait(timeout=10)  # both threads are inside their contexts at once
        logger.info("working on %s", alert)

    barrier = threading.Barrier(2)
    threads = [threading.Thread(target=work, args=(name, barrier)) for name in ("x", "y")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert sorted((o["message"], o["alert_id"]) for o in lines(buffer)) == [("working on x", "x"),
                                                                          ("working on y", "y")]


def test_text_handlers_get_the_fields_in_the_message_and_extra_is_not_overwritten() -> None:
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(logging.Formatter("%(message)s|%(customer)s"))
    handler.addFilter(ContextFilter())
    logger = logging.getLogger("tests.logs.text")
    logger.propagate = False
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        with log_context(alert_id="a 2", customer="c2", action="stop_resources"):
            logger.info("100%% done with %s", "vm")
            logger.info("given", extra={"customer": "explicit"})
        logger.info("plain")
    finally:
        logger.removeHandler(handler)
    assert buffer.getvalue().splitlines() == [
        "100% done with vm [alert_id=a 2 customer=c2 action=stop_resources]|c2",
        "given [alert_id=a 2 customer=explicit action=stop_resources]|explicit",
        "plain|",
    ]


def test_configure_logging_keeps_a_hosts_handler_and_adds_one_only_when_there_is_none() -> None:
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    try:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        stream = io.StringIO()
        added = configure_logging("INFO", fmt="json", stream=stream)
        assert added is not None and root.handlers == [added]
        with log_context(alert_id="z9", customer="cz"):
            logging.getLogger("shared.something").info("hello")
        assert json.loads(stream.getvalue())["alert_id"] == "z9"
        assert configure_logging("INFO") is None and root.handlers == [added]  # the worker's handler stays alone
        with pytest.raises(ValueError, match="text or json"):
            configure_logging("INFO", fmt="xml")
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved_handlers:
            root.addHandler(handler)
        root.setLevel(saved_level)


# --- end to end: the responder and the sync ------------------------------------------------------


def test_lines_inside_the_responder_carry_alert_customer_and_action(azurite: Azurite, fresh_sandbox: Sandbox,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    st = stage(azurite, fresh_sandbox)
    _job, body = take_job(st)
    caplog.set_level(logging.INFO)
    result = handle_respond_message(body, responder=st.responder())
    assert result is not None

    mail_line = next(r for r in caplog.records if r.getMessage().startswith("notification about alert"))
    assert (mail_line.alert_id, mail_line.customer, mail_line.action) == (  # type: ignore[attr-defined]
        ids.MINING_ALERT_EVENT_ID, ids.CUSTOMER_FABRIKAM, "notify")
    assert mail_line.getMessage().endswith(
        f"[job=respond alert_id={ids.MINING_ALERT_EVENT_ID} customer={ids.CUSTOMER_FABRIKAM} "
        f"subscription={ids.SUB_FABRIKAM_PROD} action=notify]")
    # every line the app wrote during the job names the alert and the customer
    ours = [r for r in caplog.records if r.name.startswith("shared.")]
    assert ours and all(r.alert_id == ids.MINING_ALERT_EVENT_ID for r in ours)  # type: ignore[attr-defined]
    assert all(r.customer == ids.CUSTOMER_FABRIKAM for r in ours)  # type: ignore[attr-defined]

    # an operator's approval: the row's alert, customer and action
    caplog.clear()
    pending = next(r for r in st.responder().list_actions(pending_only=True) if r.action == "suspend_subscription")
    assert pending.state == AWAITING_APPROVAL
    assert st.responder().approve(pending.action_id, "alice").state == SUCCEEDED
    approved = next(r for r in caplog.records if "approved by alice" in r.getMessage())
    assert (approved.job, approved.alert_id, approved.customer, approved.action) == (  # type: ignore[attr-defined]
        "operator", ids.MINING_ALERT_EVENT_ID, ids.CUSTOMER_FABRIKAM, "suspend_subscription")
    # outside a job nothing is stamped
    log.info("after the job")
    assert caplog.records[-1].alert_id == ""  # type: ignore[attr-defined]


def _secrets(sandbox: Sandbox, env: dict[str, str]) -> set[str]:
    """Every secret value in play: Key Vault (every version: refresh tokens, client secrets, rotated
    customer secrets), every refresh token Entra issued, the apps' secrets, every bearer token sent."""
    vault = sandbox.services["key_vault"]
    entra = sandbox.services["entra"]
    values = {v.value for versions in vault.secrets.values() for v in versions}  # type: ignore[attr-defined]
    values |= set(entra.refresh_tokens)  # type: ignore[attr-defined]
    values |= {s for app in entra.apps.values() for s in app.secrets}  # type: ignore[attr-defined]
    for request in sandbox.requests():
        auth = request.headers.get("Authorization") or request.headers.get("authorization") or ""
        if auth.lower().startswith("bearer "):
            values.add(auth[7:])
    values.add(env["AZURE_CLIENT_SECRET"])
    return {v for v in values if len(v) >= 12}


def test_no_secret_reaches_the_logs_of_a_full_sync_respond_approve_and_undo_run(
        azurite: Azurite, fresh_sandbox: Sandbox, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("azure", "httpx", "httpcore", "msal", "urllib3", "shared", "sandbox"):
        caplog.set_level(logging.DEBUG, logger=name)
    st = stage(azurite, fresh_sandbox)
    _job, body = take_job(st)
    responder = st.responder()
    handle_respond_message(body, responder=responder)
    done = [responder.approve(r.action_id, "alice") for r in responder.list_actions(pending_only=True)]
    assert {r.action for r in done if r.state == SUCCEEDED} >= {"stop_resources", "rotate_credentials"}
    rotated = next(r for r in done if r.action == "rotate_credentials" and r.state == SUCCEEDED)
    responder.undo(next(r for r in done if r.action == "stop_resources").action_id, "alice")

    secrets = _secrets(fresh_sandbox, st.env)
    assert len(secrets) >= 6, "the run should have used refresh tokens, client secrets and access tokens"
    assert rotated.data, "rotate_credentials recorded what it did"
    text = caplog.text + "\n".join(JsonFormatter().format(r) for r in caplog.records)
    assert len(caplog.records) > 50
    leaked = sorted({s[:6] + "..." for s in secrets if s in text or s[-16:] in text})
    assert not leaked, f"secrets found in the logs (first characters shown): {leaked}"


def test_http_request_lines_never_show_a_sas_signature_or_a_function_key() -> None:
    import io
    import logging

    from shared.logs import configure_logging

    stream = io.StringIO()
    root = logging.getLogger()
    saved = list(root.handlers)
    for handler in saved:
        root.removeHandler(handler)
    try:
        added = configure_logging(level="DEBUG", fmt="text", stream=stream)
        logging.getLogger("httpx").info('HTTP Request: %s %s "%s %d %s"', "GET",
                                        "https://x.blob.core.windows.net/c/b.json.gz?sv=2021-08-06&sig=AbC%2F1&se=z",
                                        "HTTP/1.1", 200, "OK")
        logging.getLogger("httpx").info("POST https://app/api/webhooks?code=s3cret-key")
        text = stream.getvalue()
        assert "AbC" not in text and "s3cret" not in text and "sig=***" in text and "code=***" in text
    finally:
        if added is not None:
            root.removeHandler(added)
        for handler in saved:
            root.addHandler(handler)
        logging.getLogger("httpx").setLevel(logging.WARNING)
