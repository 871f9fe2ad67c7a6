"""Privilege change: powerful roles granted to a principal that is neither the partner's nor known.

Why: whoever takes over a customer subscription makes it theirs (Owner, User Access
Administrator) before or while spending it, so the partner's own containment can be undone. The
activity log shows each ``Microsoft.Authorization/roleAssignments/write`` within minutes.

The rule: a succeeded role assignment write whose role is Owner, Contributor, User Access
Administrator (``roles`` in the configuration) or a custom role whose permissions grant ``*``
actions (learned from ``roleDefinitions/write`` events), to an assignee that

* is not the partner's: the caller is not in the partner tenant, the assignee is not a
  ``ForeignGroup`` (the partner's AdminAgents) nor a principal seen calling from the partner tenant;
* was not known before: never seen as caller or assignee, or first seen less than
  ``known_after_hours`` ago (a newcomer that creates VMs and then grants itself Owner is still new).

Severity is high for Owner, User Access Administrator and ``*`` custom roles, medium for
Contributor; confidence is high when the caller grants itself or is new too.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

from shared.alerts import AffectedResource
from shared.detection.base import (
    SUBSCRIPTION_SCOPE,
    ActivityEvent,
    Finding,
    Outcome,
    PartnerInput,
    Scope,
    SubscriptionInput,
    oldest_first,
)
from shared.detection.config import PrivilegeChangeConfig, section_for
from shared.detection.detectors._common import (
    body_value,
    day,
    get_ci,
    iso,
    minute,
    new_episode,
    open_episode,
    parse_iso,
    plural,
    prune,
    remember,
    stale,
)
from shared.detection.detectors.compute_burst import principal_key

NAME: Final = "privilege_change"
TYPE: Final = "PrivilegeChange"

OWNER: Final = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"
CONTRIBUTOR: Final = "b24988ac-6180-42a0-ab88-20f7382dd24c"
USER_ACCESS_ADMINISTRATOR: Final = "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9"
BUILT_IN_NAMES: Final = {OWNER: "Owner", CONTRIBUTOR: "Contributor",
                         USER_ACCESS_ADMINISTRATOR: "User Access Administrator"}

ROLE_ASSIGNMENT_WRITE: Final = "microsoft.authorization/roleassignments/write"
ROLE_DEFINITION_WRITE: Final = "microsoft.authorization/roledefinitions/write"
ROLE_ASSIGNMENT_TYPE: Final = "Microsoft.Authorization/roleAssignments"
PARTNER_PRINCIPAL_TYPES: Final = frozenset({"foreigngroup"})
"""``principalType`` of the partner's AdminAgents group in a customer subscription."""

MAX_PRINCIPALS: Final = 200
MAX_PARTNER_PRINCIPALS: Final = 50
MAX_ROLES: Final = 50
MAX_GRANTS: Final = 20


def _last_segment(value: Any) -> str:
    return str(value or "").rstrip("/").rsplit("/", 1)[-1].strip().lower()


def _wildcard_actions(event: ActivityEvent) -> bool:
    permissions = body_value(event.properties, "properties", "permissions")
    if not isinstance(permissions, list):
        return False
    for permission in permissions:
        for key in ("actions", "dataActions"):
            actions = get_ci(permission, key)
            if isinstance(actions, list) and "*" in actions:
                return True
    return False


class PrivilegeChange:
    """The privilege-change rules (pure)."""

    name: str = NAME
    scope: Scope = SUBSCRIPTION_SCOPE

    def detect(self, data: SubscriptionInput | PartnerInput, state: Mapping[str, Any],
               config: Any) -> Outcome:
        if not isinstance(data, SubscriptionInput):
            raise TypeError(f"{NAME} judges one subscription's activity, not {type(data).__name__}")
        cfg: PrivilegeChangeConfig = section_for(NAME, config)
        return _Run(data, dict(state or {}), cfg).detect()


class _Run:
    def __init__(self, data: SubscriptionInput, state: dict[str, Any], cfg: PrivilegeChangeConfig) -> None:
        self.data = data
        self.cfg = cfg
        self.sub = data.target.subscription_id.lower()
        # principal -> [first seen (epoch minutes; 0 = known from the look-back), last seen (day)]
        self.principals: dict[str, list[int]] = {k: list(v) for k, v in state.get("principals", {}).items()}
        self.partner: dict[str, int] = dict(state.get("partner", {}))
        self.roles: dict[str, int] = dict(state.get("wildcard_roles", {}))
        self.role_names: dict[str, str] = dict(state.get("role_names", {}))
        episode = state.get("episode")
        self.episode: dict[str, Any] | None = (
            {**episode, "grants": [dict(g) for g in episode.get("grants", [])]} if episode else None)
        self.learned = bool(state.get("learned"))

    def _see(self, key: str, at: datetime, *, from_lookback: bool) -> None:
        if not key:
            return
        entry = self.principals.get(key)
        if entry is None:
            self.principals[key] = [0 if from_lookback else minute(at), day(at)]
        else:
            entry[1] = max(entry[1], day(at))

    def _known(self, key: str, at: datetime) -> bool:
        entry = self.principals.get(key)
        if entry is None:
            return False
        first = entry[0]
        return first == 0 or minute(at) - first >= self.cfg.known_after_hours * 60

    def _partner_caller(self, event: ActivityEvent) -> bool:
        tenant = self.cfg.partner_tenant_id
        return bool(tenant) and event.principal_tenant_id.lower() == tenant

    def _learn(self, event: ActivityEvent, *, from_lookback: bool) -> None:
        caller = principal_key(event)
        self._see(caller, event.timestamp, from_lookback=from_lookback)
        if self._partner_caller(event):
            remember(self.partner, caller, day(event.timestamp))
        if event.status.lower() != "succeeded":
            return
        operation = event.operation.lower()
        if operation == ROLE_ASSIGNMENT_WRITE:
            assignee = str(body_value(event.properties, "properties", "principalId") or "").lower()
            self._see(assignee, event.timestamp, from_lookback=from_lookback)
        elif operation == ROLE_DEFINITION_WRITE:
            role = _last_segment(event.resource_id)
            name = str(body_value(event.properties, "properties", "roleName") or "")
            if _wildcard_actions(event):
                remember(self.roles, role, day(event.timestamp))
                if name:
                    self.role_names[role] = name[:80]
            else:
                self.roles.pop(role, None)

    def detect(self) -> Outcome:
        data = self.data
        if not self.learned:
            for event in oldest_first(data.baseline):
                self._learn(event, from_lookback=True)
            self.learned = True
        touched: list[dict[str, Any]] = []
        for event in sorted(data.events, key=lambda e: (e.timestamp, e.event_id)):
            grant = self._grant(event)
            if grant is not None:
                at = event.timestamp
                if not open_episode(self.episode, at, self.cfg.episode_gap_minutes) or self.episode is None:
                    self.episode = new_episode(NAME, at)
                episode = self.episode
                _add(episode, grant, event)
                if not touched or touched[-1] is not episode:
                    touched.append(episode)
            self._learn(event, from_lookback=False)
        if not touched and stale(self.episode, data.now, self.cfg.episode_gap_minutes):
            self.episode = None
        return Outcome(findings=tuple(self._finding(e) for e in touched), state=self._state())

    def _grant(self, event: ActivityEvent) -> dict[str, Any] | None:
        """The grant this event makes, when it is one the rule flags."""
        if event.operation.lower() != ROLE_ASSIGNMENT_WRITE or event.status.lower() != "succeeded":
            return None
        props = event.properties
        role = _last_segment(body_value(props, "properties", "roleDefinitionId"))
        if role not in self.cfg.roles and role not in self.roles:
            return None
        assignee = str(body_value(props, "properties", "principalId") or "").strip().lower()
        principal_type = str(body_value(props, "properties", "principalType") or "").strip()
        caller = principal_key(event)
        if not assignee or self._partner_caller(event):
            return None
        if principal_type.lower() in PARTNER_PRINCIPAL_TYPES or assignee in self.partner:
            return None
        if self._known(assignee, event.timestamp):
            return None
        self_grant = assignee in (caller, event.principal_id.lower())
        new_caller = not self._known(caller, event.timestamp)
        role_name = BUILT_IN_NAMES.get(role) or self.role_names.get(role) or f"custom role {role}"
        return {
            "assignment": self._relative(event.resource_id.lower()), "role_name": role_name,
            "severe": role != CONTRIBUTOR,
            "principal_id": assignee, "principal_type": principal_type, "caller": event.caller,
            "caller_tenant": event.principal_tenant_id.lower(), "ip_address": event.ip_address,
            "self_grant": self_grant, "new_caller": new_caller, "at": iso(event.timestamp),
        }

    def _relative(self, resource_id: str) -> str:
        prefix = f"/subscriptions/{self.sub}/"
        return resource_id[len(prefix) - 1:] if resource_id.startswith(prefix) else resource_id

    def _absolute(self, relative: str) -> str:
        return f"/subscriptions/{self.sub}{relative}" if relative.startswith("/providers/") else relative

    def _finding(self, episode: Mapping[str, Any]) -> Finding:
        grants: list[Mapping[str, Any]] = episode["grants"]
        severe = any(g["severe"] for g in grants)
        confident = any(g["self_grant"] or g["new_caller"] for g in grants)
        count = int(episode["count"])
        roles = sorted({str(g["role_name"]) for g in grants})
        principals = sorted({str(g["principal_id"]) for g in grants})
        callers = sorted({str(g["caller"]) for g in grants if g["caller"]})
        selfish = [g for g in grants if g["self_grant"]]
        description = (
            f"{plural(count, 'role assignment')} granted {', '.join(roles)} to "
            f"{plural(len(principals), 'principal')} neither the partner's nor seen in this subscription "
            f"before ({', '.join(principals)}), by {', '.join(callers) or 'an unknown caller'}"
            + (" (granting itself)" if selfish else "")
            + f". Rule: privileged role to a new, non-partner principal; known means seen at least "
            f"{self.cfg.known_after_hours} h earlier.")
        resources = tuple(AffectedResource(self._absolute(str(g["assignment"])), ROLE_ASSIGNMENT_TYPE)
                          for g in grants)
        evidence = {
            "rule": "privilege_change: privileged role granted to a principal neither the partner's nor known",
            "roles": roles, "principals": principals, "callers": callers,
            "self_grant": bool(selfish),
            "grants": [{**g, "assignment": self._absolute(str(g["assignment"]))} for g in grants],
            "grants_not_listed": int(episode.get("dropped", 0)),
            "known_after_hours": self.cfg.known_after_hours,
            "privileged_roles": list(self.cfg.roles), "wildcard_custom_roles": sorted(self.roles),
        }
        return Finding(
            detector=NAME, type=TYPE, customer_tenant_id=self.data.target.customer_tenant_id.lower(),
            subscription_id=self.sub, episode=str(episode["key"]),
            severity="high" if severe else "medium", confidence="high" if confident else "medium",
            title=f"Privilege change: {', '.join(roles)} granted to {plural(len(principals), 'new principal')}",
            description=description, first_observed_at=parse_iso(episode["first"]),
            last_observed_at=parse_iso(episode["last"]), count=count, resources=resources,
            evidence=evidence)

    def _state(self) -> dict[str, Any]:
        oldest = day(self.data.now) - self.cfg.memory_days
        principals = sorted(((k, v) for k, v in self.principals.items() if v[1] >= oldest),
                            key=lambda kv: (-kv[1][1], kv[0]))[:MAX_PRINCIPALS]
        roles = prune(self.roles, oldest, MAX_ROLES)
        state: dict[str, Any] = {
            "learned": True,
            "principals": dict(sorted(principals)),
            "partner": prune(self.partner, oldest, MAX_PARTNER_PRINCIPALS),
            "wildcard_roles": roles,
            "role_names": {k: v for k, v in sorted(self.role_names.items()) if k in roles},
        }
        if self.episode:
            state["episode"] = self.episode
        return state


def _add(episode: dict[str, Any], grant: dict[str, Any], event: ActivityEvent) -> None:
    episode.setdefault("grants", [])
    if any(g["assignment"] == grant["assignment"] for g in episode["grants"]):
        return
    episode["last"] = max(episode["last"], iso(event.timestamp))
    episode["count"] = int(episode["count"]) + 1
    if len(episode["grants"]) < MAX_GRANTS:
        episode["grants"].append(grant)
    else:
        episode["dropped"] = int(episode.get("dropped", 0)) + 1


DETECTOR: Final = PrivilegeChange()
