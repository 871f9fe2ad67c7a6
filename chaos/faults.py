"""The faults a campaign injects at the stand-ins: throttling, server errors, delays, dropped connections.

Drawn from a seeded ``random.Random`` so a campaign can be replayed. Each fault is used a few
times and then gone (``times``), the way real throttling and outages come and go; they are
added at run time through the sandbox's fault API (``Sandbox.add_fault``).
"""

from __future__ import annotations

import random
from typing import Any

SERVICES = ("partner_center", "graph", "arm", "key_vault", "entra")
"""Every stand-in the app calls (``cert_host`` is only read when a certificate is not cached)."""

DESTRUCTIVE_PATHS = {
    "arm": r"/(deallocate|powerOff)$",
    "partner_center": r"/v1/customers/[^/]+/subscriptions/[^/]+$",
}
"""Paths of the containment calls, so some faults land exactly on them."""


def random_fault(rng: random.Random) -> dict[str, Any]:
    """One fault definition (the fields of ``sandbox.faults.Fault``)."""
    service = rng.choice(SERVICES)
    fault: dict[str, Any] = {"service": service, "times": rng.randint(1, 3)}
    if service in DESTRUCTIVE_PATHS and rng.random() < 0.4:
        fault["path"] = DESTRUCTIVE_PATHS[service]
    kind = rng.choice(("throttle", "throttle", "5xx", "5xx", "delay", "drop"))
    if kind == "throttle":
        fault.update(kind="status", status=429, retry_after=rng.choice((0, 1, 2)))
    elif kind == "5xx":
        fault.update(kind="status", status=rng.choice((500, 502, 503)))
        if fault["status"] == 503:
            fault["retry_after"] = 1
    elif kind == "delay":
        fault.update(kind="delay", seconds=round(rng.uniform(0.5, 3.0), 2))
    else:
        fault.update(kind="drop")
    return fault


def describe(fault: dict[str, Any]) -> str:
    """A short label for counting what was injected (``arm 429``, ``graph drop``)."""
    kind = fault["kind"]
    label = str(fault.get("status")) if kind == "status" else kind
    return f"{fault['service']} {label}"
