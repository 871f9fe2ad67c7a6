"""The opaque paging token the Graph and ARM stand-ins put in their next links: an offset.

Clients must follow the link as returned; a token they made up or altered gets the service's 400.
"""

from __future__ import annotations

import base64

from sandbox.core import HttpError


def offset_token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"o:{offset}".encode()).decode()


def read_offset_token(token: str | None, *, message: str) -> int:
    """The offset in ``token`` (0 when there is none); HttpError 400 with ``message`` when invalid."""
    if token is None:
        return 0
    try:
        decoded = base64.urlsafe_b64decode(token.encode()).decode()
        if not decoded.startswith("o:"):
            raise ValueError
        return max(0, int(decoded[2:]))
    except ValueError:
        raise HttpError(400, "BadRequest", message) from None
