"""Quota jump: compute core usage per region and VM family, between two readings.

Why: ``Microsoft.Compute/locations/{location}/usages`` shows cores in use per VM family within
seconds, whatever created them (including resources the activity log shows late or under a
deployment). Two rules, both measured against the limit:

* a **jump**: a family's cores in use rose by at least ``min_jump_cores`` since the previous
  reading, and by at least ``min_jump_share`` of the family's limit;
* a **first use**: a region where nothing was in use before now uses at least
  ``first_use_min_cores`` (regional total ``cores``).

The first run only learns (there is no previous reading to compare with).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from shared.detection.base import (
    SUBSCRIPTION_SCOPE,
    Finding,
    Outcome,
    PartnerInput,
    QuotaReading,
    Scope,
    SubscriptionInput,
)
from shared.detection.config import QuotaJumpConfig, section_for
from shared.detection.detectors._common import (
    bounded_append,
    day,
    iso,
    new_episode,
    open_episode,
    parse_iso,
    plural,
    stale,
)

NAME: Final = "quota_jump"
TYPE: Final = "QuotaJump"
TOTAL: Final = "cores"
"""``name.value`` of the regional total of vCPUs."""

MAX_ROWS: Final = 200
MAX_REGIONS: Final = 80
MAX_OBSERVATIONS: Final = 30


def _watched(reading: QuotaReading) -> bool:
    name = reading.name.lower()
    return name == TOTAL or name.endswith("family")


class QuotaJump:
    """The quota-jump rules (pure)."""

    name: str = NAME
    scope: Scope = SUBSCRIPTION_SCOPE

    def detect(self, data: SubscriptionInput | PartnerInput, state: Mapping[str, Any],
               config: Any) -> Outcome:
        if not isinstance(data, SubscriptionInput):
            raise TypeError(f"{NAME} judges one subscription's usages, not {type(data).__name__}")
        cfg: QuotaJumpConfig = section_for(NAME, config)
        state = dict(state or {})
        # "location|family" -> [cores in use, limit, day read]
        rows: dict[str, list[int]] = {k: list(v) for k, v in state.get("rows", {}).items()}
        used: dict[str, int] = dict(state.get("used_regions", {}))
        read: dict[str, int] = dict(state.get("read_regions", {}))
        episode: dict[str, Any] | None = (
            {**state["episode"], "observations": [dict(o) for o in state["episode"].get("observations", [])]}
            if state.get("episode") else None)
        learned = bool(state.get("learned"))
        readings = sorted((r for r in data.quotas if _watched(r) and r.limit > 0),
                          key=lambda r: (r.read_at, r.location.lower(), r.name.lower()))
        observations: list[dict[str, Any]] = []
        if learned:
            observations = _judge(readings, rows, used, read, cfg)
        for reading in readings:
            location, at_day = reading.location.lower(), day(reading.read_at)
            rows[f"{location}|{reading.name.lower()}"] = [reading.current, reading.limit, at_day]
            read[location] = at_day
            if reading.name.lower() == TOTAL and reading.current > 0:
                used[location] = at_day
        findings: list[Finding] = []
        if observations:
            at = max(o["read_at"] for o in observations)
            when = parse_iso(at)
            if not open_episode(episode, when, cfg.episode_gap_minutes) or episode is None:
                episode = new_episode(NAME, when)
            episode.setdefault("observations", [])
            for observation in observations:
                episode["count"] = int(episode["count"]) + 1
                if len(episode["observations"]) < MAX_OBSERVATIONS:
                    episode["observations"].append(observation)
            episode["last"] = max(str(episode["last"]), at)
            findings.append(_finding(data, episode, cfg))
        elif stale(episode, data.now, cfg.episode_gap_minutes):
            episode = None
        oldest = day(data.now) - cfg.memory_days
        new_state: dict[str, Any] = {
            "learned": True,
            "rows": dict(sorted(sorted(((k, v) for k, v in rows.items() if v[2] >= oldest and (v[0] > 0)),
                                       key=lambda kv: (-kv[1][2], kv[0]))[:MAX_ROWS])),
            "used_regions": _recent(used, oldest, MAX_REGIONS),
            "read_regions": _recent(read, oldest, MAX_REGIONS),
        }
        if episode:
            new_state["episode"] = episode
        return Outcome(findings=tuple(findings), state=new_state)


def _recent(memory: Mapping[str, int], oldest: int, cap: int) -> dict[str, int]:
    kept = sorted(((k, v) for k, v in memory.items() if v >= oldest), key=lambda kv: (-kv[1], kv[0]))
    return dict(sorted(kept[:cap]))


def _judge(readings: list[QuotaReading], rows: Mapping[str, list[int]], used: Mapping[str, int],
           read: Mapping[str, int], cfg: QuotaJumpConfig) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for reading in readings:
        location, name = reading.location.lower(), reading.name.lower()
        share = reading.current / reading.limit
        base = {"location": location, "name": reading.name, "display_name": reading.display_name,
                "current": reading.current, "limit": reading.limit, "share_of_limit": round(share, 3),
                "read_at": iso(reading.read_at)}
        if name == TOTAL:
            if location not in used and reading.current >= cfg.first_use_min_cores:
                found.append({**base, "rule": "first_use", "previous": 0})
            continue
        previous_row = rows.get(f"{location}|{name}")
        if previous_row is None and location not in read:
            continue  # never read this region: a first use, judged on its total above
        previous = previous_row[0] if previous_row else 0
        rise = reading.current - previous
        if rise >= cfg.min_jump_cores and rise / reading.limit >= cfg.min_jump_share:
            found.append({**base, "rule": "jump", "previous": previous, "rise": rise,
                          "rise_share_of_limit": round(rise / reading.limit, 3)})
    return found


def _finding(data: SubscriptionInput, episode: Mapping[str, Any], cfg: QuotaJumpConfig) -> Finding:
    observations: list[Mapping[str, Any]] = episode["observations"]
    jumps = [o for o in observations if o["rule"] == "jump"]
    firsts = [o for o in observations if o["rule"] == "first_use"]
    regions: list[str] = []
    for o in observations:
        bounded_append(regions, str(o["location"]), 50)
    top = max(float(o["share_of_limit"]) for o in observations)
    parts = []
    if jumps:
        parts.append("; ".join(f"{o['name']} in {o['location']} rose {o['previous']} -> {o['current']} of "
                               f"{o['limit']} cores" for o in jumps[:5]))
    if firsts:
        parts.append("first use of " + ", ".join(f"{o['location']} ({o['current']} of {o['limit']} cores)"
                                                  for o in firsts[:5]))
    description = ("; ".join(parts) + f". Rule: a rise of at least {cfg.min_jump_cores} cores and "
                   f"{cfg.min_jump_share:.0%} of the limit between readings, or a region's first use with at "
                   f"least {cfg.first_use_min_cores} cores.")
    return Finding(
        detector=NAME, type=TYPE, customer_tenant_id=data.target.customer_tenant_id.lower(),
        subscription_id=data.target.subscription_id.lower(), episode=str(episode["key"]),
        severity="high" if top >= 0.5 else "medium",
        confidence="high" if jumps and firsts else "medium",
        title=f"Quota jump: compute cores up in {plural(len(regions), 'region')}",
        description=description, first_observed_at=parse_iso(episode["first"]),
        last_observed_at=parse_iso(episode["last"]), count=int(episode["count"]),
        evidence={"rule": "quota_jump: jump between readings or first use of a region, against the limit",
                  "observations": [dict(o) for o in observations], "regions": regions,
                  "observations_not_listed": max(0, int(episode["count"]) - len(observations)),
                  "min_jump_cores": cfg.min_jump_cores, "min_jump_share": cfg.min_jump_share,
                  "first_use_min_cores": cfg.first_use_min_cores})


DETECTOR: Final = QuotaJump()
