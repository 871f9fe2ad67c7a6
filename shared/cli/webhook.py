"""`fraud-responder webhook register|show|test`: the Partner Center webhook registration.

Partner Center keeps one registration per partner: a URL and the events posted to it. ``register``
creates it (POST) or updates it (PUT) so it includes azure-fraud-event-detected,
usagerecords-thresholdExceeded (a customer passed its spending budget) and test-created;
``test`` asks Partner Center for a test-created event and reports every delivery attempt as
Partner Center records it (GET .../validationEvents/{correlationId}).

The receiver's URL carries the ``receive_webhook`` function's own key (``?code=...``), never a host
key: a function key opens only its function, so the key Partner Center stores opens nothing else.
It is a secret, so it is never printed in full.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from shared.cli import EXIT_FAILED, EXIT_OK, CommandFailed
from shared.cli.context import settings
from shared.cli.output import print_json, print_table
from shared.formats import one_line

if TYPE_CHECKING:
    from shared.clients.partner_center import PartnerCenterClient, ValidationEvent, WebhookRegistration

FRAUD_EVENT = "azure-fraud-event-detected"
TEST_EVENT = "test-created"
THRESHOLD_EVENT = "usagerecords-thresholdExceeded"
REQUIRED_EVENTS = (FRAUD_EVENT, THRESHOLD_EVENT, TEST_EVENT)
RECEIVER_PATH = "/api/webhooks/partner-center"
FINISHED = frozenset({"completed", "complete", "succeeded", "success", "failed", "failure"})
POLL_SECONDS = 0.5
_SECRET_PARAMS = frozenset({"code", "sig", "key", "token", "secret"})


def register(subparsers: Any) -> None:
    webhook = subparsers.add_parser("webhook", help="register and test the Partner Center webhook")
    sub = webhook.add_subparsers(dest="webhook_command", metavar="COMMAND", required=True)

    reg = sub.add_parser("register", help="create or update the registration (fraud, budget and test events)",
                         description="Create the partner's webhook registration, or update it, so that "
                                     f"{', '.join(REQUIRED_EVENTS)} are posted to URL. Events already "
                                     "registered are kept.")
    reg.add_argument("--url", required=True, metavar="URL",
                     help=f"the receiver, e.g. https://<app>.azurewebsites.net{RECEIVER_PATH}?code=<webhook "
                          "function key> (receive_webhook's own key: infra/README.md shows how to get it)")
    reg.add_argument("--event", dest="events", action="append", default=[], metavar="NAME",
                     help="another event to register as well (repeatable)")
    reg.add_argument("--ms-signature-header", action="store_true",
                     help="ask Partner Center to send the signature in x-ms-signature instead of Authorization")
    reg.add_argument("--json", action="store_true", help="print the registration as JSON")
    reg.set_defaults(handler=register_webhook)

    show = sub.add_parser("show", help="the current registration")
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(handler=show_webhook)

    test = sub.add_parser("test", help="send a test event and report each delivery attempt",
                          description="Ask Partner Center to post a test-created event to the registered URL "
                                      "(at most 2 a minute) and report every delivery attempt. Exit 0 when an "
                                      "attempt succeeded, 1 otherwise.")
    test.add_argument("--wait", type=float, default=60.0, metavar="SECONDS",
                      help="how long to wait for a successful attempt (default 60)")
    test.add_argument("--json", action="store_true", help="print the validation event as JSON")
    test.set_defaults(handler=send_test_event)


def redact_url(url: str) -> str:
    """The URL with secret query values (a function key's ``code``) replaced by ``***``."""
    parts = urlsplit(url)
    if not parts.query:
        return url
    query = [(k, "***" if k.lower() in _SECRET_PARAMS else v)
             for k, v in parse_qsl(parts.query, keep_blank_values=True)]
    return urlunsplit(parts._replace(query=urlencode(query, safe="*")))


def _check_url(url: str) -> list[str]:
    """Refuse what Partner Center cannot deliver to; returns warnings worth printing."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    loopback = host in ("localhost", "127.0.0.1", "::1")
    if parts.scheme not in ("https", "http") or not host:
        raise CommandFailed(f"--url {redact_url(url)!r} is not an absolute URL; example: "
                            f"https://contoso-fraud.azurewebsites.net{RECEIVER_PATH}?code=<function key>")
    if parts.scheme != "https" and not loopback:
        raise CommandFailed("Partner Center delivers only to https:// URLs; use the function app's https address")
    warnings = []
    if not parts.path.rstrip("/").endswith(RECEIVER_PATH):
        warnings.append(f"the URL does not end in {RECEIVER_PATH}, the app's receiver route")
    if not loopback and "code=" not in parts.query:
        warnings.append("the URL has no ?code=<webhook function key>: the receiver answers 401 without it")
    return warnings


def _client(retry_attempts: int = 3) -> PartnerCenterClient:
    from shared.auth import PARTNER_CENTER_RESOURCE
    from shared.auth.partner_tokens import PartnerTokenProvider
    from shared.clients.partner_center import PartnerCenterClient
    from shared.http import RetryPolicy

    config = settings()
    try:
        tokens = PartnerTokenProvider(config)
    except ValueError as exc:
        raise CommandFailed(str(exc)) from None
    return PartnerCenterClient.from_settings(config, token=lambda: tokens.token(PARTNER_CENTER_RESOURCE),
                                             retry=RetryPolicy(max_attempts=retry_attempts, total_seconds=20.0))


def _failure(exc: Exception) -> CommandFailed:
    """One line for the errors a Partner Center call can end in."""
    from shared.auth.errors import TokenHealthError
    from shared.http import Throttled

    if isinstance(exc, TokenHealthError):
        return CommandFailed(exc.operator_message)
    if isinstance(exc, Throttled):
        return CommandFailed(f"Partner Center is rate limiting (test events: 2 a minute); try again in "
                             f"{max(1, round(exc.retry_after))} seconds")
    return CommandFailed(one_line(exc, 10_000))


def _registration_json(reg: WebhookRegistration) -> dict[str, Any]:
    return {"subscriber_id": reg.subscriber_id, "webhook_url": redact_url(reg.webhook_url),
            "webhook_events": list(reg.webhook_events),
            "signature_in_ms_signature_header": reg.signature_in_ms_signature_header}


def _print_registration(reg: WebhookRegistration) -> None:
    print(f"{'url':>10}: {redact_url(reg.webhook_url)}")
    print(f"{'events':>10}: {', '.join(reg.webhook_events)}")
    header = "x-ms-signature" if reg.signature_in_ms_signature_header else "Authorization"
    print(f"{'signature':>10}: {header} header")


def register_webhook(args: argparse.Namespace) -> int:
    from shared.auth.errors import TokenHealthError
    from shared.auth.secrets import SecretStoreError
    from shared.http import MicrosoftApiError

    for warning in _check_url(args.url):
        print(f"warning: {warning}", file=sys.stderr)
    with _client() as client:
        try:
            current = client.get_webhook_registration()
            known = set(client.webhook_event_names())
            unknown = [e for e in args.events if e not in known]
            if unknown:
                raise CommandFailed(f"unknown webhook event {unknown[0]!r}; Partner Center knows: "
                                    f"{', '.join(sorted(known))}")
            kept = current.webhook_events if current else ()
            events = list(dict.fromkeys([*REQUIRED_EVENTS, *args.events, *kept]))
            if current is not None and current.webhook_url != args.url:
                print(f"replacing the registered URL {redact_url(current.webhook_url)}", file=sys.stderr)
            registered = client.register_webhook(args.url, events, update=current is not None,
                                                 signature_in_ms_signature_header=args.ms_signature_header)
        except (TokenHealthError, SecretStoreError, MicrosoftApiError) as exc:
            raise _failure(exc) from None
    missing = [e for e in REQUIRED_EVENTS if e not in registered.webhook_events]
    if args.json:
        print_json({"action": "updated" if current is not None else "created", **_registration_json(registered)})
    else:
        print(f"webhook registration {'updated' if current is not None else 'created'}")
        _print_registration(registered)
        print("next: `fraud-responder webhook test` sends a test event to it")
    if missing:
        raise CommandFailed(f"Partner Center did not register {', '.join(missing)}; run the command again")
    return EXIT_OK


def show_webhook(args: argparse.Namespace) -> int:
    from shared.auth.errors import TokenHealthError
    from shared.auth.secrets import SecretStoreError
    from shared.http import MicrosoftApiError

    with _client() as client:
        try:
            current = client.get_webhook_registration()
        except (TokenHealthError, SecretStoreError, MicrosoftApiError) as exc:
            raise _failure(exc) from None
    if current is None:
        raise CommandFailed("no webhook is registered: run `fraud-responder webhook register --url URL`")
    if args.json:
        print_json(_registration_json(current))
    else:
        _print_registration(current)
    return EXIT_OK


def _event_json(event: ValidationEvent) -> dict[str, Any]:
    return {"correlation_id": event.correlation_id, "status": event.status,
            "callback_url": redact_url(event.callback_url),
            "succeeded": any(a.succeeded for a in event.results),
            "attempts": [{"response_code": a.response_code, "response_message": a.response_message,
                          "system_error": a.system_error, "at": a.date_time_utc, "succeeded": a.succeeded}
                         for a in event.results]}


def send_test_event(args: argparse.Namespace) -> int:
    from shared.auth.errors import TokenHealthError
    from shared.auth.secrets import SecretStoreError
    from shared.http import MicrosoftApiError, NotFound

    with _client(retry_attempts=1) as client:
        try:
            current = client.get_webhook_registration()
            if current is None:
                raise CommandFailed("no webhook is registered: run `fraud-responder webhook register --url URL` "
                                    "first")
            if TEST_EVENT not in current.webhook_events:
                raise CommandFailed(f"the registration does not include {TEST_EVENT}: run `fraud-responder webhook "
                                    "register --url URL` to add it")
            correlation_id = client.send_validation_event()
            print(f"test event {correlation_id} sent to {redact_url(current.webhook_url)}; waiting for delivery "
                  f"(up to {args.wait:g}s) ...", file=sys.stderr)
            event = _wait_for_attempts(client, correlation_id, args.wait, NotFound)
        except (TokenHealthError, SecretStoreError, MicrosoftApiError) as exc:
            raise _failure(exc) from None
    ok = any(a.succeeded for a in event.results)
    if args.json:
        print_json(_event_json(event))
    else:
        print_table(["attempt", "at (utc)", "response", "message / error"],
                    [[i, a.date_time_utc[:19], a.response_code or "-",
                      one_line(a.system_error or a.response_message, 100)]
                     for i, a in enumerate(event.results, 1)])
        print(f"status: {event.status or 'unknown'}; " + (
            "the receiver accepted the test event" if ok else
            "no attempt succeeded: check that the function app runs and the URL (and its function key) is right"))
    return EXIT_OK if ok else EXIT_FAILED


def _wait_for_attempts(client: PartnerCenterClient, correlation_id: str, wait: float,
                       not_found: type[Exception]) -> ValidationEvent:
    """Poll the validation event until an attempt succeeds, Partner Center gives up, or ``wait`` ends."""
    from shared.clients.partner_center import ValidationEvent

    deadline = time.monotonic() + max(0.0, wait)
    event = ValidationEvent(correlation_id, "", "pending", "", ())
    shown = 0
    while True:
        with contextlib.suppress(not_found):  # not visible yet right after the POST
            event = client.get_validation_event(correlation_id)
        for number, attempt in enumerate(event.results[shown:], shown + 1):
            what = attempt.response_code or f"no response ({attempt.system_error})"
            print(f"attempt {number}: {what}", file=sys.stderr)
        shown = len(event.results)
        if any(a.succeeded for a in event.results) or event.status.lower() in FINISHED:
            return event
        if time.monotonic() >= deadline:
            print(f"stopped waiting after {wait:g}s; Partner Center may still retry", file=sys.stderr)
            return event
        time.sleep(POLL_SECONDS)
