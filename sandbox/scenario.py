"""Scenario files: the initial state of every stand-in, as one JSON object.

Sections: ``tenants``, ``entra``, ``key_vault``, ``partner_center``, ``webhooks``, ``graph``,
``arm`` and ``faults``. Each service receives its own section; ``tenants`` is shared.

Placeholders, filled in when the sandbox starts (and again on every reset, with a new "now"):

- ``{{now}}``, ``{{now-2h}}``, ``{{now+30m}}``, ``{{now-90s}}``, ``{{now-3d}}``: a UTC timestamp
  relative to start, ISO 8601 with a ``Z`` (``2025-01-31T09:15:00Z``). Suffix ``|date`` gives the
  date only (``{{now-3d|date}}`` -> ``2025-01-28``), ``|epoch`` the Unix time in seconds
  (a JSON number when the placeholder is the whole string), ``|ms`` milliseconds with seven-digit
  fractions as Partner Center writes them (``2025-01-31T09:15:00.0000000Z``).
- ``{{id:SUB_FABRIKAM_PROD}}``: a constant from ``sandbox/ids.py`` (so sections agree on ids).
- ``{{url:key_vault}}``: the base URL a stand-in listens on (``partner_center``, ``entra``,
  ``graph``, ``arm``, ``key_vault``, ``cert_host``).

A placeholder may be the whole string or part of it (``"{{url:cert_host}}/certs/{{id:PARTNER_TENANT_ID}}.cer"``).
An unknown placeholder is an error naming it, so a typo cannot silently reach a test.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sandbox import ids

DEFAULT_SCENARIO = Path(__file__).resolve().parent / "scenarios" / "default.json"
SECTIONS = ("tenants", "entra", "key_vault", "partner_center", "webhooks", "graph", "arm", "faults")

_PLACEHOLDER = re.compile(r"\{\{\s*([^{}]+?)\s*\}\}")
_NOW = re.compile(r"now(?:\s*([+-])\s*(\d+)\s*([smhd]))?(?:\s*\|\s*(date|epoch|ms))?")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class ScenarioError(ValueError):
    """The scenario file is missing, not JSON or holds an unknown placeholder."""


def load_scenario(source: Path | str | Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The raw scenario (placeholders not yet filled): a file path, a dict, or the default."""
    if source is None:
        source = DEFAULT_SCENARIO
    if isinstance(source, Mapping):
        document: Any = copy.deepcopy(dict(source))
    else:
        path = Path(source)
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ScenarioError(f"scenario file {path} does not exist") from None
        except json.JSONDecodeError as exc:
            raise ScenarioError(f"scenario file {path} is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise ScenarioError("a scenario must be a JSON object with sections " + ", ".join(SECTIONS))
    for section in SECTIONS:
        document.setdefault(section, [] if section == "faults" else {})
    return document


def _format_time(moment: dt.datetime, fmt: str | None) -> str | int:
    if fmt == "date":
        return moment.date().isoformat()
    if fmt == "epoch":
        return int(moment.timestamp())
    if fmt == "ms":
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond:06d}0Z"
    return moment.replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def _value(expression: str, now: dt.datetime, urls: Mapping[str, str]) -> str | int:
    match = _NOW.fullmatch(expression)
    if match:
        sign, amount, unit, fmt = match.groups()
        moment = now
        if sign:
            delta = dt.timedelta(seconds=int(amount) * _UNITS[unit])
            moment = now + delta if sign == "+" else now - delta
        return _format_time(moment, fmt)
    kind, _, name = expression.partition(":")
    if kind == "id":
        value = getattr(ids, name.strip(), None)
        if not isinstance(value, str):
            raise ScenarioError(f"unknown placeholder {{{{{expression}}}}}: sandbox/ids.py has no {name.strip()}")
        return value
    if kind == "url":
        if name.strip() not in urls:
            raise ScenarioError(f"unknown placeholder {{{{{expression}}}}}: no service {name.strip()!r} is running")
        return urls[name.strip()]
    raise ScenarioError(
        f"unknown placeholder {{{{{expression}}}}}; use {{{{now-2h}}}}, {{{{id:NAME}}}} or {{{{url:service}}}}"
    )


def resolve(document: Any, *, now: dt.datetime | None = None, urls: Mapping[str, str] | None = None) -> Any:
    """A deep copy of ``document`` with every placeholder filled in."""
    moment = now or dt.datetime.now(dt.UTC)
    known_urls = urls or {}

    def walk(value: Any) -> Any:
        if isinstance(value, str):
            whole = _PLACEHOLDER.fullmatch(value)
            if whole:
                return _value(whole.group(1), moment, known_urls)
            return _PLACEHOLDER.sub(lambda m: str(_value(m.group(1), moment, known_urls)), value)
        if isinstance(value, dict):
            return {walk(k) if isinstance(k, str) else k: walk(v) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v) for v in value]
        return value

    return walk(document)
