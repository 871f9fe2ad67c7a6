"""The detectors' one validated configuration: the policy file's ``[detection]`` table.

Why one place: thresholds are what operators tune when a detector is too noisy or too quiet, so
they live beside the rules that answer the alerts (``policy/default.toml``), are checked by
``fraud-responder policy check`` with the rest, and every mistake is reported by its dotted name
(``detection.compute_burst.min_count``) at once, not one per run.

Layout (every key optional; the defaults below are the documented ones, see ``docs/detection.md``)::

    [detection]                      # general settings
    lookback_days = 7
    [detection.compute_burst]        # one table per detector
    min_count = 5

Each detector receives its own section (``config.section("compute_burst")``); every section
carries the general ``episode_gap_minutes`` and ``memory_days`` unless it sets its own, so a
detector needs nothing else.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, Final, get_type_hints

from shared.errors import FraudResponderError

TABLE: Final = "detection"


class DetectionConfigError(FraudResponderError, ValueError):
    """The ``[detection]`` table cannot be used; ``errors`` holds one line per problem, each
    starting with the setting's dotted name."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = tuple(errors)
        super().__init__("; ".join(self.errors))


def _setting(default: Any, low: float | None = None, high: float | None = None) -> Any:
    """A setting's default and its allowed range (inclusive), kept in the field's metadata."""
    return field(default=default, metadata={"low": low, "high": high})


@dataclass(frozen=True)
class GeneralConfig:
    """Settings every detector and the runner share."""

    lookback_days: int = _setting(7, 1, 90)
    """First run: how much older history is read to learn each subscription's usual activity
    (principals, regions, sizes, rates). The activity log keeps 90 days."""
    first_run_window_minutes: int = _setting(60, 5, 10_080)
    """First run: the most recent part of the look-back that is judged (older events are learned)."""
    episode_gap_minutes: int = _setting(120, 5, 10_080)
    """Evidence closer than this to the previous evidence belongs to the same episode (one alert
    that grows); after a longer quiet spell a new episode (a new alert) starts."""
    memory_days: int = _setting(30, 1, 90)
    """How long a detector remembers principals, regions, sizes and rates it has seen."""
    partner_tenant_id: str = _setting("")
    """The partner's own tenant: its users and AdminAgents are never "new" to a customer."""


@dataclass(frozen=True)
class ComputeBurstConfig:
    """Creations and scale-ups of compute (VMs, scale sets, container groups, Batch pools, ML computes)."""

    window_minutes: int = _setting(60, 5, 1440)
    """Creations are counted per window of this length."""
    min_count: int = _setting(5, 1, 10_000)
    """The count signal needs at least this many creations in one window ..."""
    rate_factor: float = _setting(3.0, 1.0, 1000.0)
    """... and more than this many times the subscription's usual (median busy) window."""
    high_core_vcpus: int = _setting(32, 2, 1000)
    """A VM size with at least this many vCPUs is "high-core" (first-seen sizes signal)."""
    gpu_size_prefixes: tuple[str, ...] = _setting(("standard_nc", "standard_nd", "standard_nv",
                                                   "standard_ng"))
    """VM size name prefixes (lower case) of GPU sizes: the N-series."""
    min_signals: int = _setting(2, 1, 4)
    """Signals that must agree to raise an alert (new principal, first-seen GPU/high-core size,
    first-seen region, count over threshold)."""
    high_confidence_signals: int = _setting(3, 1, 4)
    """Signals that make the alert high confidence (and high severity)."""
    episode_gap_minutes: int = _setting(0, 0, 10_080)
    """0: the general ``episode_gap_minutes``."""
    memory_days: int = _setting(0, 0, 90)
    """0: the general ``memory_days``."""
    partner_tenant_id: str = _setting("")
    """"": the general ``partner_tenant_id``."""


@dataclass(frozen=True)
class PrivilegeChangeConfig:
    """Role assignments granting powerful roles to a principal that is neither the partner's nor known."""

    roles: tuple[str, ...] = _setting(("8e3af657-a8ff-443c-a75c-2fe8c4bcb635",    # Owner
                                       "b24988ac-6180-42a0-ab88-20f7382dd24c",    # Contributor
                                       "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9"))   # User Access Administrator
    """Role definition ids (built-in GUIDs) that count as privileged; custom roles whose
    permissions grant ``*`` actions count too (learned from roleDefinitions/write events)."""
    known_after_hours: int = _setting(24, 0, 2160)
    """A principal first seen by a judged event counts as known only this long after it was
    first seen (so a newcomer that creates VMs and then grants itself Owner is still new).
    Principals of the first run's look-back are known at once."""
    episode_gap_minutes: int = _setting(0, 0, 10_080)
    """0: the general ``episode_gap_minutes``."""
    memory_days: int = _setting(0, 0, 90)
    """0: the general ``memory_days``."""
    partner_tenant_id: str = _setting("")
    """"": the general ``partner_tenant_id``."""


@dataclass(frozen=True)
class QuotaJumpConfig:
    """Compute core usage per region and VM family (``Microsoft.Compute/locations/{loc}/usages``)."""

    min_jump_cores: int = _setting(16, 1, 100_000)
    """A rise between two readings of at least this many cores ..."""
    min_jump_share: float = _setting(0.25, 0.0, 1.0)
    """... that is also at least this share of the limit, is a jump."""
    first_use_min_cores: int = _setting(8, 1, 100_000)
    """A region (family) used for the first time with at least this many cores is a signal."""
    episode_gap_minutes: int = _setting(0, 0, 10_080)
    """0: the general ``episode_gap_minutes``."""
    memory_days: int = _setting(0, 0, 90)
    """0: the general ``memory_days``."""


@dataclass(frozen=True)
class MicroFraudConfig:
    """Bursts of new customers or subscriptions per indirect reseller (else per partner user)."""

    window_minutes: int = _setting(360, 5, 10_080)
    """New customers and subscriptions are counted per window of this length."""
    min_new_customers: int = _setting(5, 1, 100_000)
    """A burst: at least this many new customers in one window ..."""
    min_new_subscriptions: int = _setting(10, 1, 100_000)
    """... or this many new subscriptions in one window ..."""
    rate_factor: float = _setting(3.0, 1.0, 1000.0)
    """... and more than this many times the group's usual (median busy) window."""
    small_max_quantity: int = _setting(1, 1, 100_000)
    """A new subscription of at most this quantity (seats or units) is "small" ..."""
    small_window_hours: int = _setting(24, 1, 720)
    """... and at least ``small_min_count`` small ones in this many hours add up to a finding."""
    small_min_count: int = _setting(20, 1, 100_000)
    episode_gap_minutes: int = _setting(0, 0, 10_080)
    """0: the general ``episode_gap_minutes``."""
    memory_days: int = _setting(0, 0, 90)
    """0: the general ``memory_days``."""


@dataclass(frozen=True)
class SpendConfig:
    """The spend detectors over the daily series (``shared.spend.rules``; amounts in the billing currency)."""

    spike_baseline_days: int = _setting(28, 7, 90)
    """Days before the judged one that form its baseline (same kind of day: weekday or weekend)."""
    spike_min_history_days: int = _setting(14, 3, 90)
    """A subscription with fewer days is judged by the new-subscription caps instead."""
    spike_k: float = _setting(6.0, 1.0, 100.0)
    """The day must exceed median + k x 1.4826 x MAD ..."""
    spike_min_ratio: float = _setting(2.5, 1.0, 1000.0)
    """... and be at least this many times the median ..."""
    spike_floor: float = _setting(100.0, 0.0, 1e9)
    """... and at least this much above it (small numbers stay quiet)."""
    young_days: int = _setting(14, 1, 90)
    """A subscription younger than this has no baseline: its caps judge it."""
    young_daily_cap: float = _setting(500.0, 0.0, 1e9)
    young_total_cap: float = _setting(1500.0, 0.0, 1e9)
    new_meter_recent_days: int = _setting(2, 1, 30)
    """A GPU, machine learning, Batch or container meter first seen within this many days is new."""
    new_region_min_history_days: int = _setting(14, 1, 90)
    """A first-used region counts only for a subscription with this much history."""
    micro_fraud_window_days: int = _setting(7, 1, 60)
    micro_fraud_min_new_subscriptions: int = _setting(5, 2, 100_000)
    micro_fraud_small_daily: float = _setting(150.0, 0.0, 1e9)
    """A new subscription is small when its largest day stays under this."""
    micro_fraud_min_total: float = _setting(500.0, 0.0, 1e9)
    """The group's small new subscriptions must add up to at least this in the window."""


SECTIONS: Final[dict[str, type]] = {
    "compute_burst": ComputeBurstConfig,
    "privilege_change": PrivilegeChangeConfig,
    "quota_jump": QuotaJumpConfig,
    "micro_fraud": MicroFraudConfig,
    "spend": SpendConfig,
}
"""Detector name -> its section's class (the keys are the ``[detection.<name>]`` tables)."""


@dataclass(frozen=True)
class DetectionConfig:
    """The whole ``[detection]`` table, validated (build it with ``from_mapping``, which fills the
    sections' general settings; ``section(name)`` does so for one built directly)."""

    general: GeneralConfig = GeneralConfig()
    compute_burst: ComputeBurstConfig = ComputeBurstConfig()
    privilege_change: PrivilegeChangeConfig = PrivilegeChangeConfig()
    quota_jump: QuotaJumpConfig = QuotaJumpConfig()
    micro_fraud: MicroFraudConfig = MicroFraudConfig()
    spend: SpendConfig = SpendConfig()

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None, *, prefix: str = TABLE) -> DetectionConfig:
        """Build from the parsed ``[detection]`` table; raise DetectionConfigError naming every mistake."""
        errors: list[str] = []
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise DetectionConfigError([f"{prefix}: expected a table, got {_kind(data)}"])
        general_data = {k: v for k, v in data.items() if k not in SECTIONS}
        general = _build(GeneralConfig, general_data, prefix, errors, allowed_extra=())
        sections: dict[str, Any] = {}
        for name, section_cls in SECTIONS.items():
            raw = data.get(name, {})
            if not isinstance(raw, Mapping):
                errors.append(f"{prefix}.{name}: expected a table, got {_kind(raw)}")
                raw = {}
            sections[name] = _build(section_cls, raw, f"{prefix}.{name}", errors, allowed_extra=())
        if errors:
            raise DetectionConfigError(errors)
        resolved = {name: _inherit(section, general) for name, section in sections.items()}
        return cls(general=general, **resolved)

    def with_partner_tenant(self, tenant_id: str) -> DetectionConfig:
        """This configuration with ``partner_tenant_id`` filled from the app's setting when the
        table leaves it empty (the runner calls this with ``PARTNER_TENANT_ID``)."""
        if self.general.partner_tenant_id or not tenant_id:
            return self
        general = replace(self.general, partner_tenant_id=tenant_id.strip().lower())
        return replace(self, general=general, **{name: _inherit(getattr(self, name), general) for name in SECTIONS})

    def section(self, name: str) -> Any:
        """One detector's section (general settings filled in)."""
        if name not in SECTIONS:
            raise KeyError(f"no detection section {name!r}; choose from {', '.join(SECTIONS)}")
        return _inherit(getattr(self, name), self.general)


def section_for(name: str, config: Any) -> Any:
    """What a detector should use, whatever it was handed: the whole config, its section or None."""
    if config is None:
        return DEFAULT.section(name)
    if isinstance(config, DetectionConfig):
        return config.section(name)
    if isinstance(config, SECTIONS[name]):
        return _inherit(config, DEFAULT.general)
    raise TypeError(f"{name}: expected its DetectionConfig section, got {type(config).__name__}")


def _inherit(section: Any, general: GeneralConfig) -> Any:
    """Fill a section's 0 / "" general settings from the general ones."""
    changes: dict[str, Any] = {}
    for name in ("episode_gap_minutes", "memory_days", "partner_tenant_id"):
        if hasattr(section, name) and not getattr(section, name):
            changes[name] = getattr(general, name)
    return replace(section, **changes) if changes else section


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, int | float):
        return f"a number ({value})"
    if isinstance(value, str):
        return f"a string ({value!r})"
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, list | tuple):
        return "a list"
    return type(value).__name__


def _build(cls: type, data: Mapping[str, Any], prefix: str, errors: list[str],
           *, allowed_extra: tuple[str, ...]) -> Any:
    """Check every key of ``data`` against ``cls``'s fields; collect mistakes; return an instance."""
    hints = get_type_hints(cls)
    known = {f.name: f for f in fields(cls)}
    values: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}.{key}"
        spec = known.get(key)
        if spec is None:
            if key in allowed_extra:
                continue
            choices = ", ".join(sorted(known))
            errors.append(f"{name}: unknown setting; choose from {choices}")
            continue
        checked = _check(name, value, hints[key], spec.metadata, errors)
        if checked is not None:
            values[key] = checked
    return cls(**values)


def _check(name: str, value: Any, hint: Any, meta: Mapping[str, Any], errors: list[str]) -> Any:
    low, high = meta.get("low"), meta.get("high")
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            errors.append(f"{name}: expected a whole number, got {_kind(value)}")
            return None
    elif hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            errors.append(f"{name}: expected a number, got {_kind(value)}")
            return None
        value = float(value)
    elif hint is str:
        if not isinstance(value, str):
            errors.append(f"{name}: expected a string, got {_kind(value)}")
            return None
        return value.strip().lower()
    else:  # tuple[str, ...]
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) and v.strip() for v in value):
            errors.append(f"{name}: expected a list of non-empty strings, got {_kind(value)}")
            return None
        return tuple(v.strip().lower() for v in value)
    if (low is not None and value < low) or (high is not None and value > high):
        errors.append(f"{name}: {value} is out of range; allowed {_fmt(low)} to {_fmt(high)}")
        return None
    return value


def _fmt(bound: float | None) -> str:
    if bound is None:
        return "any"
    return str(int(bound)) if float(bound).is_integer() else str(bound)


DEFAULT: Final = DetectionConfig.from_mapping({})
"""The defaults, general settings filled into every section."""
