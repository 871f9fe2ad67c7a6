"""The parts of host.json the dev host honours: the HTTP route prefix and the queue trigger options.

Defaults are the Functions host's documented ones, so a host.json without ``extensions.queues``
behaves here as it does in Azure.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_TIMESPAN = re.compile(r"^(?:(\d+)\.)?(\d{1,2}):(\d{1,2}):(\d{1,2})(?:\.(\d{1,7}))?$")


class HostJsonError(ValueError):
    """host.json has a value the host would reject; the message names it and a good example."""


def parse_timespan(text: str, *, name: str) -> float:
    """Seconds in a .NET TimeSpan string such as ``00:00:10`` or ``1.00:00:00.5``."""
    match = _TIMESPAN.match(text.strip())
    if not match:
        raise HostJsonError(f"{name}={text!r} is not a TimeSpan; example: {name}=\"00:00:10\"")
    days, hours, minutes, seconds, fraction = match.groups()
    total = int(days or 0) * 86400 + int(hours) * 3600 + int(minutes) * 60 + int(seconds)
    return total + (float("0." + fraction) if fraction else 0.0)


@dataclass(frozen=True)
class QueueOptions:
    """``extensions.queues`` in host.json (the host's defaults when absent)."""

    batch_size: int = 16
    new_batch_threshold: int = 8
    max_dequeue_count: int = 5
    visibility_timeout: float = 0.0
    max_polling_interval: float = 60.0
    message_encoding: str = "base64"

    @property
    def concurrency(self) -> int:
        """Messages one queue processes at once: a batch plus the next one fetched early."""
        return self.batch_size + self.new_batch_threshold

    @classmethod
    def from_dict(cls, section: Mapping[str, Any]) -> QueueOptions:
        prefix = "extensions.queues."
        batch_size = _int(section, "batchSize", 16, 1, 32)
        encoding = str(section.get("messageEncoding", "base64")).lower()
        if encoding not in ("base64", "none"):
            raise HostJsonError(f"{prefix}messageEncoding={encoding!r} must be base64 or none")
        return cls(
            batch_size=batch_size,
            new_batch_threshold=_int(section, "newBatchThreshold", batch_size // 2, 0, 1024),
            max_dequeue_count=_int(section, "maxDequeueCount", 5, 1, 1000),
            visibility_timeout=parse_timespan(str(section.get("visibilityTimeout", "00:00:00")),
                                              name=prefix + "visibilityTimeout"),
            max_polling_interval=max(0.1, parse_timespan(str(section.get("maxPollingInterval", "00:01:00")),
                                                         name=prefix + "maxPollingInterval")),
            message_encoding=encoding,
        )


def _int(section: Mapping[str, Any], key: str, default: int, low: int, high: int) -> int:
    value = section.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise HostJsonError(f"extensions.queues.{key}={value!r} must be a whole number from {low} to {high}")
    return value


@dataclass(frozen=True)
class HostConfig:
    """What the dev host reads from host.json."""

    route_prefix: str = "api"
    queues: QueueOptions = QueueOptions()

    @classmethod
    def from_dict(cls, document: Mapping[str, Any]) -> HostConfig:
        extensions = document.get("extensions") or {}
        http = extensions.get("http") or {}
        prefix = str(http.get("routePrefix", "api")).strip("/")
        return cls(route_prefix=prefix, queues=QueueOptions.from_dict(extensions.get("queues") or {}))

    @classmethod
    def load(cls, path: Path) -> HostConfig:
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise HostJsonError(f"{path.name} not found: the dev host runs from the repository root") from None
        except json.JSONDecodeError as exc:
            raise HostJsonError(f"{path.name} is not valid JSON: {exc}") from None
        if not isinstance(document, dict):
            raise HostJsonError(f"{path.name} must hold a JSON object")
        return cls.from_dict(document)
