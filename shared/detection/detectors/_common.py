"""Helpers the detectors share: time keys, bounded memories, episodes, reading request bodies.

Why here: every detector keeps the same kinds of state (what it has seen, when; the open episode)
and must keep it bounded and deterministic; one implementation keeps them alike.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final

EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def day(at: datetime) -> int:
    """Days since the epoch: the unit memories are kept in (small integers in JSON)."""
    return (at - EPOCH).days


def minute(at: datetime) -> int:
    """Minutes since the epoch."""
    return int((at - EPOCH).total_seconds() // 60)


def window(at: datetime, window_minutes: int) -> int:
    """The index of the counting window ``at`` falls in."""
    return minute(at) // window_minutes


def iso(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def compact(at: datetime) -> str:
    """A time as a key fragment safe in table keys and URLs (no ':' '/' '#' '?')."""
    return at.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def remember(memory: dict[str, int], key: str, at_day: int) -> None:
    """Note ``key`` as seen on ``at_day`` (keeps the latest day)."""
    if key and memory.get(key, -1) < at_day:
        memory[key] = at_day


def prune(memory: dict[str, int], oldest_day: int, cap: int) -> dict[str, int]:
    """Forget what was last seen before ``oldest_day``; keep at most ``cap`` most recent (ties by key)."""
    kept = [(k, v) for k, v in memory.items() if v >= oldest_day]
    kept.sort(key=lambda kv: (-kv[1], kv[0]))
    return dict(sorted(kept[:cap]))


def usual(counts: Iterable[int]) -> float:
    """The usual size of a busy window: the median of the windows that had any activity."""
    values = [c for c in counts if c > 0]
    return float(statistics.median(values)) if values else 0.0


def get_ci(data: Any, *path: str) -> Any:
    """``data[path[0]][path[1]]...`` with keys matched case-insensitively (ARM's request bodies
    say ``Properties`` where responses say ``properties``); None when any step is missing."""
    current = data
    for key in path:
        if not isinstance(current, Mapping):
            return None
        if key in current:
            current = current[key]
            continue
        wanted = key.lower()
        current = next((v for k, v in current.items() if isinstance(k, str) and k.lower() == wanted), None)
        if current is None:
            return None
    return current


def body_value(properties: Mapping[str, Any], *path: str) -> Any:
    """A value from the event's response body, else its request body (both parsed by the reader)."""
    for body in ("responseBody", "requestbody"):
        value = get_ci(properties, body, *path)
        if value is not None:
            return value
    return None


def as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def open_episode(episode: Mapping[str, Any] | None, at: datetime, gap_minutes: int) -> bool:
    """True when evidence at ``at`` continues ``episode`` (within the gap after its last evidence)."""
    if not episode:
        return False
    return at - parse_iso(str(episode["last"])) <= timedelta(minutes=gap_minutes)


def new_episode(detector: str, at: datetime, subject: str = "") -> dict[str, Any]:
    """A fresh episode keyed by the detector and the time of its first evidence."""
    key = f"{detector}-{subject + '-' if subject else ''}{compact(at)}"
    return {"key": key, "first": iso(at), "last": iso(at), "count": 0}


def stale(episode: Mapping[str, Any] | None, now: datetime, gap_minutes: int) -> bool:
    """True when nothing can continue ``episode`` any more: its gap has passed by ``now``."""
    return bool(episode) and not open_episode(episode, now, gap_minutes)


def bounded_append(items: list[str], value: str, cap: int) -> bool:
    """Append ``value`` once; False when the list is full (the caller counts what it dropped)."""
    if value in items:
        return True
    if len(items) >= cap:
        return False
    items.append(value)
    return True


def plural(count: int, word: str, many: str = "") -> str:
    return f"{count} {word if count == 1 else (many or word + 's')}"
