"""Strict parsing of JSON request bodies: every way a body can be hostile is one ``JsonBodyError``.

``json.loads`` alone lets bad input escape as the wrong exception: a number longer than Python's
int limit (4,300 digits) raises a bare ValueError, deep nesting a RecursionError (or, below the
recursion limit, a document that later code recurses over), invalid UTF-8 a UnicodeDecodeError,
and ``NaN``/``Infinity`` are accepted though JSON has no such values. Every HTTP body reader
(webhook, admin API, the dev host's admin trigger) goes through ``parse_json_body`` so each of
these is a 400 with a message that names the problem, never a 500 or a dropped connection.
"""

from __future__ import annotations

import json
import sys
from typing import Any, Final

from shared.errors import FraudResponderError

MAX_DEPTH: Final = 32
"""Arrays and objects nested deeper than this are refused (no body this app reads needs more than 4)."""
MAX_INT_DIGITS: Final = sys.get_int_max_str_digits() or 4300
"""Python's limit on int conversion (4,300 digits by default): a longer number is refused."""


class JsonBodyError(FraudResponderError, ValueError):
    """The body is not strict JSON this app will read; the message says why, in one line."""

    http_status = 400
    error_code = "bad_request"


def _no_constant(name: str) -> Any:
    raise JsonBodyError(f"{name} is not a JSON value")


def _depth_exceeds(document: Any, limit: int) -> bool:
    """True when ``document`` nests arrays/objects deeper than ``limit`` (iterative: no recursion)."""
    pending: list[tuple[Any, int]] = [(document, 1)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, dict | list):
            if depth > limit:
                return True
            children = value.values() if isinstance(value, dict) else value
            pending.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def parse_json_body(body: bytes | bytearray | str, *, max_depth: int = MAX_DEPTH) -> Any:
    """The JSON document in ``body`` (UTF-8); raises JsonBodyError for anything not strict JSON."""
    if isinstance(body, bytes | bytearray):
        try:
            text = bytes(body).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JsonBodyError(f"the body is not valid UTF-8 (byte {exc.start})") from None
    else:
        text = body
    if text.startswith("\ufeff"):
        raise JsonBodyError("the body starts with a byte order mark; send UTF-8 JSON without one")
    try:
        document = json.loads(text, parse_constant=_no_constant)
    except JsonBodyError:
        raise
    except json.JSONDecodeError as exc:
        raise JsonBodyError(f"the body is not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    except RecursionError:
        raise JsonBodyError(f"the JSON is nested deeper than {max_depth} levels") from None
    except ValueError:  # int() refused a number longer than the interpreter's digit limit
        raise JsonBodyError(f"a number in the body has more than {MAX_INT_DIGITS} digits") from None
    if _depth_exceeds(document, max_depth):
        raise JsonBodyError(f"the JSON is nested deeper than {max_depth} levels")
    return document
