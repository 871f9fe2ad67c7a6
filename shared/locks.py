"""Striped in-process locks: one lock per key without a lock (or memory) per key ever seen.

Keys hash onto a fixed set of locks, so two keys may share one and then take turns; that costs a
little waiting, never correctness, since every lock here only orders work that the storage's
conditional writes already keep correct across processes.
"""

from __future__ import annotations

import threading
import zlib


class StripedLocks:
    """``count`` locks; ``for_key(*parts)`` is the one a key maps to, the same for the life of the process."""

    def __init__(self, count: int) -> None:
        if count < 1:
            raise ValueError("count must be at least 1")
        self._locks = tuple(threading.Lock() for _ in range(count))

    def for_key(self, *parts: str) -> threading.Lock:
        key = "\x1f".join(parts).encode("utf-8", "surrogatepass")
        return self._locks[zlib.crc32(key) % len(self._locks)]
