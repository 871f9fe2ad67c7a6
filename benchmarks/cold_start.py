"""Import time of function_app next to `import azure.functions` alone, in fresh interpreters."""

from __future__ import annotations

import statistics
import subprocess
import sys
from typing import Any

from benchmarks.common import ROOT

RUNS = 7
_CODE = "import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"


def _time_import(module: str) -> float:
    out = subprocess.run([sys.executable, "-c", _CODE.format(module=module)], cwd=ROOT, capture_output=True,
                         text=True, check=True)
    return float(out.stdout.strip())


def run() -> dict[str, Any]:
    app, base = [], []
    for _ in range(RUNS):  # interleaved, so drift affects both alike
        base.append(_time_import("azure.functions"))
        app.append(_time_import("function_app"))
    base_ms, app_ms = statistics.median(base) * 1000, statistics.median(app) * 1000
    return {"azure_functions_ms": base_ms, "function_app_ms": app_ms, "ratio": app_ms / base_ms, "runs": RUNS}
