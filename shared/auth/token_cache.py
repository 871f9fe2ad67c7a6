"""A thread-safe in-memory access-token cache keyed by (tenant, resource)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

REFRESH_MARGIN_SECONDS = 300
"""Tokens are renewed this long before they expire, so a call never starts with a dying token."""


@dataclass(frozen=True)
class AccessToken:
    token: str
    expires_at: float

    def __repr__(self) -> str:
        return f"AccessToken(expires_at={self.expires_at})"


class TokenCache:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._tokens: dict[tuple[str, str], AccessToken] = {}
        self._lock = threading.Lock()

    def get(self, tenant: str, resource: str) -> AccessToken | None:
        with self._lock:
            cached = self._tokens.get((tenant, resource))
        if cached is not None and cached.expires_at - REFRESH_MARGIN_SECONDS > self._clock():
            return cached
        return None

    def put(self, tenant: str, resource: str, token: str, expires_in: float) -> AccessToken:
        entry = AccessToken(token, self._clock() + float(expires_in))
        with self._lock:
            self._tokens[(tenant, resource)] = entry
        return entry

    def clear(self) -> None:
        with self._lock:
            self._tokens.clear()
