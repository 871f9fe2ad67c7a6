"""Structured logs: every line a job writes carries the alert id, customer and action it is about.

Why: an operator answering "what happened to alert X?" or "which customer keeps failing?" in
Application Insights needs those fields on every line, including lines written deep inside the
Azure SDKs, MSAL or httpx, which know nothing about alerts.

How:

* ``log_context(...)`` (a context manager) and ``contextual(...)`` (a decorator) set the fields
  for the code they wrap, in a ``contextvars.ContextVar``, so threads and asyncio tasks each see
  their own; ``add_context(...)`` adds fields to the innermost enclosing context once they are
  known (the alert is loaded after the job starts). Leaving the context restores what was before.
* ``ContextFilter`` copies the fields onto every record a handler sees, as attributes
  (``record.alert_id``, ``record.customer``, ``record.action``, ``record.subscription``,
  ``record.job``, all strings, "" when unknown; ``record.log_context`` is the
  ``key=value`` summary). Attributes are what the OpenTelemetry ``LoggingHandler`` (the
  ``azure-monitor-opentelemetry`` distro) turns into ``customDimensions``, exactly like ``extra=``.
* Azure Functions' default Python pipeline ships only the formatted message text to Application
  Insights (``traces.message``; the worker sends level, logger name and invocation id, not
  ``extra``). So the filter also appends `` [alert_id=... customer=... action=...]`` to the message
  while a context is set; docs/operations.md has KQL that reads either form.
* ``configure_logging`` sets the level, installs the filter on the root logger's handlers and,
  only when nobody configured logging yet (a local run), adds a stderr handler: text, or one JSON
  object per line with ``LOG_FORMAT=json``. Under the Functions host the worker's own handler is
  already on the root logger and is kept (adding another would log every line twice).

Only identifiers go into the context: alert ids, tenant and subscription ids, action names.
Never a token or a secret.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import json
import logging
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Final, ParamSpec, TextIO, TypeVar

FIELDS: Final = ("job", "alert_id", "customer", "subscription", "action")
"""The context fields, in the order they are shown."""
SUMMARY_ATTRIBUTE: Final = "log_context"
"""Record attribute holding ``alert_id=... customer=...`` (the suffix added to the message)."""
NOISY_LOGGERS: Final = ("azure", "httpx", "httpcore", "msal", "urllib3")
"""Libraries that log every request at INFO: kept at WARNING unless LOG_LEVEL is DEBUG."""

P = ParamSpec("P")
R = TypeVar("R")

_EMPTY: Mapping[str, str] = {}
_context: contextvars.ContextVar[Mapping[str, str]] = contextvars.ContextVar("fraud_responder_log_context",
                                                                             default=_EMPTY)
_depth: contextvars.ContextVar[int] = contextvars.ContextVar("fraud_responder_log_context_depth", default=0)


def current_context() -> dict[str, str]:
    """The fields set here (only the non-empty ones)."""
    return dict(_context.get())


def _merged(fields: Mapping[str, str | None]) -> Mapping[str, str]:
    merged = dict(_context.get())
    for name, value in fields.items():
        if value is not None:
            text = " ".join(str(value).split())[:200]
            if text:
                merged[name] = text
            else:
                merged.pop(name, None)
    return merged


@contextlib.contextmanager
def log_context(*, job: str | None = None, alert_id: str | None = None, customer: str | None = None,
                subscription: str | None = None, action: str | None = None) -> Iterator[None]:
    """Set fields for the block (merged over the enclosing ones; "" clears a field; None keeps it)."""
    ensure_filter_installed()
    token = _context.set(_merged({"job": job, "alert_id": alert_id, "customer": customer,
                                  "subscription": subscription, "action": action}))
    depth = _depth.set(_depth.get() + 1)
    try:
        yield
    finally:
        _depth.reset(depth)
        _context.reset(token)


def add_context(*, job: str | None = None, alert_id: str | None = None, customer: str | None = None,
                subscription: str | None = None, action: str | None = None) -> None:
    """Add fields to the innermost enclosing ``log_context`` (they go when it ends).

    Outside any context this does nothing: a field set there would outlive the job and be
    stamped on the next job's lines in the same worker thread.
    """
    if _depth.get() <= 0:
        return
    _context.set(_merged({"job": job, "alert_id": alert_id, "customer": customer, "subscription": subscription,
                          "action": action}))


def contextual(*, job: str | None = None) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Run the decorated function in its own ``log_context`` (so it can ``add_context``)."""
    def decorate(function: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(function)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            with log_context(job=job):
                return function(*args, **kwargs)

        return wrapper

    return decorate


def summary(fields: Mapping[str, str]) -> str:
    """``alert_id=... customer=... action=...`` for the non-empty fields, in FIELDS order."""
    return " ".join(f"{name}={fields[name]}" for name in FIELDS if fields.get(name))


_SIGNATURE = re.compile(r"(?i)\b(sig|code)=[^&\s\"']+")


class SignatureFilter(logging.Filter):
    """Masks URL credentials (a SAS ``sig=``, a function key ``code=``) in the HTTP libraries' request
    lines: at DEBUG they log every URL, and a billing export's blob URL carries its SAS."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any("=" in str(a) for a in record.args):
            record.args = tuple(_SIGNATURE.sub(r"\1=***", str(a)) if "=" in str(a) else a for a in record.args)
        if isinstance(record.msg, str) and "=" in record.msg:
            record.msg = _SIGNATURE.sub(r"\1=***", record.msg)
        return True


class ContextFilter(logging.Filter):
    """Puts the context fields on each record (attributes) and, with ``in_message``, in its text.

    Safe to attach to several handlers: a record is stamped once, by the first filter that sees
    it; attributes a caller already set with ``extra=`` are kept.
    """

    def __init__(self, *, in_message: bool = True) -> None:
        super().__init__()
        self.in_message = in_message

    def filter(self, record: logging.LogRecord) -> bool:
        if hasattr(record, SUMMARY_ATTRIBUTE):
            return True
        fields = _context.get()
        for name in FIELDS:
            if not hasattr(record, name):
                setattr(record, name, fields.get(name, ""))
        text = summary({name: str(getattr(record, name) or "") for name in FIELDS})
        setattr(record, SUMMARY_ATTRIBUTE, text)
        if self.in_message and text:
            try:
                message = record.getMessage()
            except Exception:  # a bad format string: logging reports it; leave the record as it is
                return True
            record.msg, record.args = f"{message} [{text}]", None
        return True


def plain_message(record: logging.LogRecord) -> str:
    """The message without the context suffix the filter may have appended."""
    message = record.getMessage()
    text = getattr(record, SUMMARY_ATTRIBUTE, "")
    suffix = f" [{text}]"
    return message[: -len(suffix)] if text and message.endswith(suffix) else message


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the context fields, exception."""

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": plain_message(record),
        }
        for name in FIELDS:
            value = getattr(record, name, "")
            if value:
                document[name] = str(value)
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        return json.dumps(document, ensure_ascii=False, default=str)


TEXT_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def _has_context_filter(handler: logging.Handler) -> bool:
    return any(isinstance(f, ContextFilter) for f in handler.filters)


def ensure_filter_installed(logger: logging.Logger | None = None) -> None:
    """Attach a ContextFilter to every handler of the root logger (or ``logger``) that lacks one.

    Called on entering every context, so a handler added later (the Functions worker's, an
    OpenTelemetry exporter's, pytest's caplog) is covered the next time a job starts.
    """
    target = logger or logging.getLogger()
    for handler in list(target.handlers):
        if not _has_context_filter(handler):
            # JSON output carries the fields as keys: no suffix in its message.
            handler.addFilter(ContextFilter(in_message=not isinstance(handler.formatter, JsonFormatter)))


def configure_logging(level: str = "INFO", *, fmt: str = "text",
                      stream: TextIO | None = None) -> logging.Handler | None:
    """Set up logging for a process; returns the handler it added (None when it kept the host's).

    ``fmt`` is "text" or "json" (``LOG_FORMAT``). The root logger gets ``level``; the chatty
    HTTP and SDK loggers stay at WARNING unless ``level`` is DEBUG.
    """
    if fmt not in ("text", "json"):
        raise ValueError(f"log format {fmt!r} is not known; use text or json")
    root = logging.getLogger()
    root.setLevel(level)
    for name in NOISY_LOGGERS:
        noisy = logging.getLogger(name)
        noisy.setLevel(logging.DEBUG if level == "DEBUG" else logging.WARNING)
        if not any(isinstance(f, SignatureFilter) for f in noisy.filters):
            noisy.addFilter(SignatureFilter())
    added: logging.Handler | None = None
    if not root.handlers:
        added = logging.StreamHandler(stream or sys.stderr)
        added.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
        root.addHandler(added)
    ensure_filter_installed(root)
    return added
