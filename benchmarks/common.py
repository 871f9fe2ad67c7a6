"""Helpers shared by the benchmarks: percentiles, peak RSS, the local stack."""

from __future__ import annotations

import json
import resource
import statistics
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    k = (len(ordered) - 1) * pct / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def summary_ms(values: list[float]) -> dict[str, float]:
    return {"p50_ms": percentile(values, 50) * 1000, "p99_ms": percentile(values, 99) * 1000,
            "mean_ms": statistics.fmean(values) * 1000 if values else 0.0}


def peak_rss_mb() -> float:
    """Peak resident set size of this process (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@contextmanager
def local_stack(scenario: dict[str, Any] | None = None) -> Iterator[tuple[Any, Any]]:
    """Azurite (in memory) and the sandbox, both stopped afterwards."""
    from devhost.azurite import start_azurite
    from sandbox.core import start_sandbox

    azurite = start_azurite()
    try:
        sandbox = start_sandbox(scenario)
        try:
            yield azurite, sandbox
        finally:
            sandbox.stop()
    finally:
        azurite.stop()


def default_scenario() -> dict[str, Any]:
    return dict(json.loads((ROOT / "sandbox" / "scenarios" / "default.json").read_text()))


def line(name: str, figures: dict[str, Any]) -> str:
    parts = []
    for key, value in figures.items():
        parts.append(f"{key}={value:.2f}" if isinstance(value, float) else f"{key}={value}")
    return f"{name:<28} " + "  ".join(parts)
