"""The alert-source registry: one entry per source of alerts, one module per source.

Why: intake, policy, response, notifications, settings, the CLI and the admin API all need to
know which sources exist. They ask here instead of each keeping its own list, so a new source (a
Microsoft feed, or one of our own detectors) is one module plus one ``register`` call.

An entry (``SourceEntry``) is light: name, display name, the token principal its credential
reports under, whether it writes status back to Microsoft, its categories (with headline and
notification window) and the dotted path of its module. The module is imported only when an alert
of that source is parsed, fetched or written back (``load``), so importing this registry costs
nothing at cold start (the lazy-by-dotted-path idea of Cloud Custodian's ``resource_map``).

How to add a source or detector
-------------------------------
1. Write a module with the functions of ``SourceModule``:
   ``parse(record) -> Alert`` (raise ``shared.alerts.AlertParseError`` for a useless record),
   ``categorise(alert_type) -> str``, ``fetcher(settings, store, providers)`` returning an object
   with ``name`` and ``pages(scope)``; and, when the source writes status back,
   ``read_status``, ``write_status`` and ``sent_reason`` (see ``shared.sources.graph``).
   Keep heavy imports (SDKs, HTTP clients) inside functions.
2. Register it once: ``register(SourceEntry(name=..., display_name=..., module="pkg.mod", ...))``;
   the built-in ones are registered at the bottom of this file. A detector that records verdicts
   only in our tables sets ``writes_status=False`` ("local only"), and ``polled=False`` since the
   detection runner, not ``poll``, stores its alerts (``shared.sources.detectors``).
3. Nothing else: settings (``ALERT_SOURCES``), ``poll --source``, the OpenAPI enums, policy
   validation (``source``, ``category``), health (token principal) and notification headlines
   read the registry. ``tests/intake/test_source_registry.py`` registers a toy source this way.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Protocol, overload

from shared.errors import FraudResponderError

if TYPE_CHECKING:
    from shared.alerts import Alert
    from shared.intake.sync import AlertSource
    from shared.response.actions.base import Clients
    from shared.settings import Settings
    from shared.storage.tables import TableStore

OTHER: Final = "other"
"""The category of an alert type no source recognises: kept and answered, never dropped."""
DEFAULT_THROTTLE_HOURS: Final = 1.0


class UnknownSource(FraudResponderError, ValueError):
    """A source name no entry is registered under."""


@dataclass(frozen=True)
class Category:
    """An alert category a source produces: its notification headline and throttle window."""

    name: str
    headline: str = ""
    throttle_hours: float = DEFAULT_THROTTLE_HOURS


@dataclass(frozen=True)
class SourceEntry:
    """What the rest of the app may know about a source without importing its module."""

    name: str
    display_name: str
    module: str
    """Dotted path of the module implementing ``SourceModule``, imported on first use."""
    credential: str = ""
    """Token-health principal of the source's credential; "" for a source that needs none."""
    writes_status: bool = True
    """False: "local only" (a detector): update_status records the status in our tables only."""
    categories: tuple[Category, ...] = ()
    polled: bool = True
    """False: not read by ``poll`` (a detector: the detection runner stores its findings)."""


class SourceModule(Protocol):
    """The functions a source module provides (a module object satisfies it structurally)."""

    def parse(self, record: Mapping[str, Any]) -> Alert: ...
    def categorise(self, alert_type: str) -> str: ...
    def fetcher(self, settings: Settings, store: TableStore, providers: dict[str, Any]) -> AlertSource: ...


class StatusWriter(Protocol):
    """The extra functions of a source that writes status back (``writes_status=True``)."""

    def read_status(self, clients: Clients, alert: Alert) -> Alert | None: ...
    def write_status(self, clients: Clients, alert: Alert, status: str, reason: str) -> dict[str, Any]: ...
    def sent_reason(self, reason: str) -> str: ...


_ENTRIES: dict[str, SourceEntry] = {}
_MODULES: dict[str, Any] = {}


def register(entry: SourceEntry) -> SourceEntry:
    """Add (or replace) a source; returns the entry so a module can keep it as a constant."""
    if not entry.name or entry.name != entry.name.strip().lower() or ":" in entry.name:
        raise ValueError(f"a source name is lower case without ':' or spaces, not {entry.name!r}")
    _ENTRIES[entry.name] = entry
    _MODULES.pop(entry.name, None)
    return entry


def unregister(name: str) -> None:
    """Remove a source (for tests that register a toy one)."""
    _ENTRIES.pop(name, None)
    _MODULES.pop(name, None)


def names() -> tuple[str, ...]:
    """Registered source names, in registration order."""
    return tuple(_ENTRIES)


def polled_names() -> tuple[str, ...]:
    """Sources ``poll`` reads (``ALERT_SOURCES`` chooses among them), in registration order."""
    return tuple(name for name, entry in _ENTRIES.items() if entry.polled)


def get(name: str) -> SourceEntry:
    try:
        return _ENTRIES[name]
    except KeyError:
        raise UnknownSource(f"unknown alert source {name!r}; choose from {', '.join(_ENTRIES)}") from None


def load(name: str) -> SourceModule:
    """The source's module (imported once)."""
    module = _MODULES.get(name)
    if module is None:
        module = _MODULES[name] = importlib.import_module(get(name).module)
    return module  # type: ignore[no-any-return]


def status_writer(name: str) -> StatusWriter | None:
    """The module that writes status back to the source, or None for a local-only source."""
    return load(name) if get(name).writes_status else None  # type: ignore[return-value]


def display_name(name: str) -> str:
    entry = _ENTRIES.get(name)
    return entry.display_name if entry else name


def credential(name: str) -> str:
    """The principal token health records for this source (its own name when it declares none)."""
    entry = _ENTRIES.get(name)
    return (entry.credential if entry else "") or name


def categorise(source: str, alert_type: str) -> str:
    """The category of an alert type, as its source defines it; OTHER when the source is unknown."""
    module = _MODULES.get(source)  # the hot path: every stored alert asks
    if module is None:
        if source not in _ENTRIES:
            return OTHER
        module = load(source)
    return module.categorise(alert_type) or OTHER  # type: ignore[no-any-return]


def categories() -> tuple[str, ...]:
    """Every category any source declares, then OTHER."""
    seen = dict.fromkeys(c.name for e in _ENTRIES.values() for c in e.categories)
    seen.pop(OTHER, None)
    return (*seen, OTHER)


def category(name: str) -> Category | None:
    """The first declaration of a category (headline, throttle window)."""
    return next((c for e in _ENTRIES.values() for c in e.categories if c.name == name), None)


def headline(category_name: str) -> str:
    found = category(category_name)
    return found.headline if found else ""


def throttle_hours(category_name: str) -> float:
    found = category(category_name)
    return found.throttle_hours if found else DEFAULT_THROTTLE_HOURS


class _Live(Sequence[str]):
    """A read-only view of names that follows the registry (for constants imported early)."""

    def __init__(self, read: Any) -> None:
        self._read = read

    @overload
    def __getitem__(self, index: int) -> str: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[str]: ...
    def __getitem__(self, index: int | slice) -> str | Sequence[str]:
        return self._read()[index]  # type: ignore[no-any-return]

    def __len__(self) -> int:
        return len(self._read())

    def __iter__(self) -> Iterator[str]:
        return iter(self._read())

    def __contains__(self, value: object) -> bool:
        return value in self._read()

    def __repr__(self) -> str:
        return repr(self._read())


SOURCE_NAMES: Final[Sequence[str]] = _Live(names)
"""Live view of ``names()``: a constant for modules that import it before a test registers more."""
POLLED_SOURCE_NAMES: Final[Sequence[str]] = _Live(polled_names)
"""Live view of ``polled_names()``."""
CATEGORY_NAMES: Final[Sequence[str]] = _Live(categories)
"""Live view of ``categories()``."""


# --- the built-in sources ---------------------------------------------------------------------------

MICROSOFT_CATEGORIES: Final = (
    Category("crypto_mining", "Crypto-mining detected", throttle_hours=24.0),
    Category("anomalous_compute", "Anomalous compute detected"),
    Category("suspicious_operations", "Suspicious operations detected"),
    Category("service_health", "Service health security advisory"),
)
"""Categories of Partner Center fraud events and Graph partner security alerts (same alert types)."""

register(SourceEntry("partner_center", "Partner Center", "shared.sources.partner_center",
                     credential="partner_center", categories=MICROSOFT_CATEGORIES))
register(SourceEntry("graph", "Microsoft Graph", "shared.sources.graph",
                     credential="graph_app", categories=MICROSOFT_CATEGORIES))

DETECTOR_CATEGORIES: Final = {
    "compute_burst": Category("compute_burst", "Compute burst detected"),
    "privilege_change": Category("privilege_change", "Privilege change detected"),
    "quota_jump": Category("quota_jump", "Compute quota jump detected"),
    "micro_fraud": Category("micro_fraud", "Burst of new customers or subscriptions detected"),
}
"""Our own detectors (``shared.detection``): local only, not polled, one category each."""
_DETECTOR_DISPLAY: Final = {"compute_burst": "Compute burst detector",
                            "privilege_change": "Privilege change detector",
                            "quota_jump": "Quota jump detector", "micro_fraud": "Micro-fraud detector"}
for _name, _category in DETECTOR_CATEGORIES.items():
    register(SourceEntry(_name, _DETECTOR_DISPLAY[_name], "shared.sources.detectors", writes_status=False,
                         categories=(_category,), polled=False))
