"""python -m benchmarks [cold_start|webhook|sync|sync_large|spend|containment|backlog ...]: run and print
the figures."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from benchmarks import backlog, cold_start, containment, detection, spend, sync, webhook
from benchmarks.common import line


def _sync_large() -> dict[str, Any]:
    small = sync.run(10_000, 200, bare=False)
    large = sync.run(100_000, 200, bare=False)
    return {"rss_10k_mb": small["peak_rss_mb"], "rss_100k_mb": large["peak_rss_mb"],
            "rss_ratio": large["peak_rss_mb"] / small["peak_rss_mb"], "target_rss_ratio": 2.0,
            "sync_100k_s": large["sync_s"], "round_trip_ratio_100k": large["round_trip_ratio"]}


BENCHMARKS: dict[str, Callable[[], dict[str, Any]]] = {
    "cold_start": cold_start.run,
    "webhook": webhook.run,
    "sync": sync.run,
    "sync_large": _sync_large,
    "spend": spend.run,
    "containment": containment.run,
    "backlog": backlog.run,
    "detection": detection.run,
}


def main(argv: list[str]) -> int:
    names = argv or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark {unknown[0]!r}; choose from {', '.join(BENCHMARKS)}", file=sys.stderr)
        return 2
    for name in names:
        print(line(name, BENCHMARKS[name]()), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
