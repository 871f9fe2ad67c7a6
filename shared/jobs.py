"""Queue job messages: small JSON documents, validated before any work starts."""

from __future__ import annotations

import json
from typing import Any

from shared.errors import FraudResponderError


class InvalidJob(FraudResponderError, ValueError):
    """A queue message that can never succeed: it is recorded and dropped, not retried."""


def parse_job(body: bytes, *, kind: str, required: tuple[str, ...]) -> dict[str, Any]:
    try:
        document = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidJob(f"{kind} message is not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise InvalidJob(f"{kind} message must be a JSON object")
    missing = [name for name in required if name not in document]
    if missing:
        raise InvalidJob(f"{kind} message lacks {', '.join(missing)}")
    return document
