"""requirements.txt for the Functions deployment, derived from pyproject.toml's runtime deps.

``python -m shared.requirements write`` regenerates it; tests/test_requirements.py fails when
the two drift.
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEADER = "# Generated from pyproject.toml by `make requirements`; do not edit by hand.\n"


def runtime_requirements() -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return sorted(project["dependencies"], key=str.lower)


def render() -> str:
    return HEADER + "".join(f"{req}\n" for req in runtime_requirements())


def main(argv: list[str]) -> int:
    path = ROOT / "requirements.txt"
    if argv[1:] == ["write"]:
        path.write_text(render(), encoding="utf-8")
        return 0
    if argv[1:] == ["check"]:
        return 0 if path.read_text(encoding="utf-8") == render() else 1
    print("usage: python -m shared.requirements write|check", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
