"""The Node.js version the README asks for is the one `npm ci` really needs, and the one we run.

Every package in package-lock.json that declares ``engines.node`` must accept the stated minimum,
package.json's ``engines`` must state it, and every place that tells a user which Node.js to install
(README, Makefile, the dev host's error) must name the same version.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
Version = tuple[int, int, int]


def _version(text: str) -> Version:
    parts = [int(p) if p.isdigit() else 0 for p in re.split(r"\.", text.strip().lstrip("v=").rstrip(".x"))[:3]]
    major, minor, patch = [*parts, 0, 0, 0][:3]
    return major, minor, patch


def _satisfies(version: Version, comparator: str) -> bool:
    found = re.fullmatch(r"(>=|<=|>|<|\^|~|=)?\s*v?([0-9x*]+(?:\.[0-9x*]+){0,2})", comparator.strip())
    assert found, f"unsupported engines comparator {comparator!r}"
    op, text = found.group(1) or "=", found.group(2)
    if text in ("*", "x"):
        return True
    wanted = _version(text.replace("x", "0").replace("*", "0"))
    if op == "^":
        return version >= wanted and version[0] == wanted[0]
    if op == "~":
        return version >= wanted and version[:2] == wanted[:2]
    if op == "=" and ("x" in text or "*" in text or text.count(".") < 2):
        prefix = len([p for p in text.split(".") if p not in ("x", "*")])
        return version[:prefix] == wanted[:prefix]
    return {">=": version >= wanted, "<=": version <= wanted, ">": version > wanted, "<": version < wanted,
            "=": version == wanted}[op]


def satisfies(version: Version, spec: str) -> bool:
    """A semver range as npm writes them: ``a || b``, each a space-separated set of comparators."""
    for written in spec.split("||"):
        alternative = re.sub(r"(>=|<=|>|<|\^|~|=)\s+", r"\1", written.strip())
        if not alternative or alternative == "*" or all(_satisfies(version, c) for c in alternative.split()):
            return True
    return False


def stated_minimum() -> Version:
    engines = json.loads((ROOT / "package.json").read_text())["engines"]["node"]
    found = re.fullmatch(r">=\s*([0-9]+\.[0-9]+\.[0-9]+)", engines)
    assert found, f"package.json engines.node should be '>=X.Y.Z', not {engines!r}"
    return _version(found.group(1))


def test_every_locked_package_accepts_the_stated_node_minimum() -> None:
    minimum = stated_minimum()
    lock = json.loads((ROOT / "package-lock.json").read_text())
    refused = {name or "(root)": p["engines"]["node"] for name, p in lock["packages"].items()
               if isinstance(p.get("engines"), dict) and "node" in p["engines"]
               and not satisfies(minimum, p["engines"]["node"])}
    assert refused == {}, f"these locked packages refuse Node.js {'.'.join(map(str, minimum))}: {refused}"
    assert lock["packages"][""].get("engines") == json.loads((ROOT / "package.json").read_text())["engines"]


def test_readme_makefile_and_devhost_name_the_same_node_version() -> None:
    minimum = stated_minimum()
    shown = f"{minimum[0]}.{minimum[1]}" if minimum[2] == 0 else ".".join(map(str, minimum))
    texts = {path: (ROOT / path).read_text() for path in ("README.md", "Makefile", "devhost/azurite.py")}
    for path, text in texts.items():
        mentions = re.findall(r"Node\.js \(?([0-9][0-9.]*)", text)
        assert mentions, f"{path} does not say which Node.js to install"
        assert set(mentions) == {shown}, f"{path} names Node.js {mentions}; npm ci needs {shown}+"


@pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed")
def test_the_node_on_this_machine_is_one_the_lock_accepts() -> None:
    """CI runs on this machine: the Node.js it has must be one the README allows."""
    version = _version(subprocess.run(["node", "--version"], capture_output=True, text=True, check=True).stdout)
    assert version >= stated_minimum()


@pytest.mark.parametrize(("version", "spec", "expected"), [
    ((20, 6, 0), ">=20.0.0", True), ((20, 6, 0), ">=22.0.0", False), ((20, 6, 0), "^18.19.0 || >=20.6.0", True),
    ((20, 5, 0), "^18.19.0 || >=20.6.0", False), ((20, 6, 0), ">= 0.8", True), ((20, 6, 0), "*", True),
    ((20, 6, 0), "<=0.11.8 || >0.11.10", True), ((20, 6, 0), ">=0.6.11 <=0.7.0 || >=0.7.3", True),
    ((20, 6, 0), ">=9.3.0 || >=8.10.0 <9.0.0", True), ((20, 6, 0), ">=0.8.x", True), ((20, 6, 0), ">=22", False),
])
def test_the_range_check_itself(version: Version, spec: str, expected: bool) -> None:
    assert satisfies(version, spec) is expected
