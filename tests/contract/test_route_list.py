"""sandbox/README.md's route list, the stand-ins' code and the contract suite must agree.

Every route a stand-in serves (control endpoints under ``/_sandbox/`` aside) is listed in the
README; every listed route is served and is driven by at least one contract test (``@covers``).
A stand-in added later fails here until it is listed and has its contract tests.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

import tests.contract
from sandbox.core import CONTROL_PREFIX, registered_services
from tests.contract.routes import COVERED

README = Path(__file__).resolve().parents[2] / "sandbox" / "README.md"
_ENTRY = re.compile(r"^- `(?P<service>[a-z_]+) (?P<method>[A-Z]+) (?P<path>/\S*)`", re.MULTILINE)
_SAMPLES = {"version": "0a1b2c", "name": "sample1"}


def listed_routes() -> set[tuple[str, str]]:
    """(service, "METHOD path") from the README's route list."""
    text = README.read_text(encoding="utf-8")
    start, end = text.index("<!-- contract-routes:begin -->"), text.index("<!-- contract-routes:end -->")
    return {(m["service"], f"{m['method']} {m['path']}") for m in _ENTRY.finditer(text[start:end])}


def covered_routes() -> set[tuple[str, str]]:
    for module in pkgutil.iter_modules(tests.contract.__path__):
        if module.name.startswith("test_"):
            importlib.import_module(f"tests.contract.{module.name}")
    return {(service, route) for service, routes in COVERED.items() for route in routes}


def sample(path: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: _SAMPLES.get(m.group(1), f"{m.group(1)}-1"), path)


def test_every_listed_route_has_a_contract_test() -> None:
    listed, covered = listed_routes(), covered_routes()
    assert listed, "sandbox/README.md has no route list"
    assert sorted(listed - covered) == [], "listed routes no contract test drives"
    assert sorted(covered - listed) == [], "contract tests name routes the README does not list"


def test_the_list_matches_what_the_stand_ins_serve() -> None:
    served = {(name, route.method, route.pattern) for name, klass in registered_services().items()
              for route in klass.routes() if not route.pattern.pattern.startswith(CONTROL_PREFIX)}
    listed = [(service, *entry.split(" ", 1)) for service, entry in listed_routes()]
    not_served = [(s, m, p) for s, m, p in listed
                  if not any(n == s and method == m and pattern.fullmatch(sample(p)) for n, method, pattern in served)]
    assert not_served == [], "listed routes no stand-in serves"
    not_listed = [(n, method, pattern.pattern) for n, method, pattern in served
                  if not any(s == n and m == method and pattern.fullmatch(sample(p)) for s, m, p in listed)]
    assert not_listed == [], "routes the stand-ins serve that sandbox/README.md does not list"
