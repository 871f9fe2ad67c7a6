"""The contract every action implements, and what it is given to work with.

An action never decides *whether* to run (the policy and the engine do) and never writes the
ledger (the engine does, before and after each call). It answers four questions for one target:

* ``plan``: which targets would I act on for this alert? (no side effects; dry-run shows this)
* ``verify``: is this target already in the state I would put it in? (checked BEFORE executing,
  so a crash after the external call and before the ledger write is resolved by looking, not by
  acting twice: the VM is already deallocated, the credential already exists)
* ``execute``: do it (idempotent) and return what undo will need (never a secret value)
* ``undo``: put it back, from what execute recorded; ``NotReversible`` when it cannot be undone.

Transient failures (throttling, 5xx, timeouts) raise ``shared.http`` errors so the queue retries
the job; ``ActionFailed`` is permanent (the row is marked failed and operators are notified).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from shared.alerts import Alert
from shared.errors import FraudResponderError
from shared.settings import Settings

if TYPE_CHECKING:
    from shared.auth.app_tokens import GraphAppTokenProvider
    from shared.auth.partner_tokens import PartnerTokenProvider
    from shared.auth.secrets import SecretStore
    from shared.clients.arm import ArmClient
    from shared.clients.graph import GraphClient
    from shared.clients.partner_center import PartnerCenterClient
    from shared.storage.tables import TableStore


class ActionFailed(FraudResponderError):
    """A permanent failure: retrying the same call cannot succeed. Say what an operator can do."""

    http_status = 502
    error_code = "source_refused"


class NotReversible(ActionFailed):
    """This action (or this target) cannot be undone."""


@dataclass(frozen=True)
class Target:
    """What one ledger row is about: a VM, a user, an app, a subscription, the alert itself."""

    kind: str
    """vm | vmss | user | application | service_principal | subscription | entitlement | alert | notification"""
    id: str
    """ARM resource id, directory object id, subscription id, alert key, ... (stable: part of the ledger key)"""
    display: str = ""
    tenant: str = ""
    """The customer tenant the call goes to (ARM and Graph in the customer tenant)."""
    details: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    """Plan-time facts shown to an approver (why this target): never secrets."""


@dataclass
class Outcome:
    """What execute / undo did: a one-line summary and the data to record (no secrets)."""

    summary: str
    data: dict[str, Any] = field(default_factory=dict)
    already_done: bool = False
    """True when verify found the target already in the desired state and nothing was called."""


@dataclass(frozen=True)
class Implicated:
    """Who created or changed the affected resources, from the investigation."""

    users: tuple[tuple[str, str], ...] = ()
    """(object id or UPN, display) of users"""
    service_principals: tuple[tuple[str, str], ...] = ()
    """(object id or app id, display) of service principals / applications"""


class Clients:
    """Clients an action may need, built on first use and reused for the whole job.

    Tokens: Partner Center and Graph/ARM in customer tenants use the Secure Application Model
    refresh token (GDAP); sendMail and partner security alerts use the app-only Graph app.
    """

    def __init__(self, settings: Settings, store: TableStore) -> None:
        self.settings = settings
        self.store = store
        self._cache: dict[tuple[str, str], Any] = {}

    def _once(self, key: tuple[str, str], build: Callable[[], Any]) -> Any:
        if key not in self._cache:
            self._cache[key] = build()
        return self._cache[key]

    @functools.cached_property
    def partner_tokens(self) -> PartnerTokenProvider:
        from shared import factory

        return factory.partner_tokens(self.settings)

    @functools.cached_property
    def app_tokens(self) -> GraphAppTokenProvider:
        from shared import factory

        return factory.app_tokens(self.settings)

    def partner_center(self) -> PartnerCenterClient:
        from shared import factory

        return self._once(("pc", ""), lambda: factory.partner_center(  # type: ignore[no-any-return]
            self.settings, self.partner_tokens))

    def graph_app(self) -> GraphClient:
        """Graph with the app-only token in the partner tenant (sendMail, partner security alerts)."""
        from shared import factory

        return self._once(("graph-app", ""), lambda: factory.graph_app(  # type: ignore[no-any-return]
            self.settings, self.app_tokens))

    def graph_customer(self, tenant: str) -> GraphClient:
        """Graph in a customer tenant with the SAM (GDAP) token: users, applications, sessions."""
        from shared import factory

        return self._once(("graph", tenant), lambda: factory.graph_delegated(  # type: ignore[no-any-return]
            self.settings, self.partner_tokens, tenant))

    def arm(self, tenant: str) -> ArmClient:
        """ARM in a customer tenant with the SAM (GDAP) token."""
        from shared import factory

        return self._once(("arm", tenant), lambda: factory.arm(  # type: ignore[no-any-return]
            self.settings, self.partner_tokens, tenant))

    def secrets(self) -> SecretStore:
        from shared import factory

        return self._once(("kv", ""), lambda: factory.secret_store(self.settings))  # type: ignore[no-any-return]


@dataclass
class ActionContext:
    """Everything one action call gets. ``params`` are the policy's, with defaults filled in."""

    settings: Settings
    alert: Alert
    params: dict[str, Any]
    clients: Clients
    actor: str
    """"policy:<rule name>" or "operator:<name>"."""
    investigation: dict[str, Any] | None = None
    """The stored investigation (see actions/investigate.py), when one ran before this action."""
    test: bool = False
    """A Microsoft test alert: the only action run is a notification marked as a test."""
    summary: dict[str, Any] = field(default_factory=dict)
    """For notify: what was done and what waits for approval (the engine fills it)."""
    seen: dict[str, Any] = field(default_factory=dict)
    """What an action's ``verify`` read of a target (by target id), for its ``execute`` right after: the
    engine calls them back to back under the row's lease, so reading the same state twice is a round trip
    spent for nothing. ``execute`` takes it (pop) and reads for itself when it is absent."""

    def implicated(self) -> Implicated:
        inv = self.investigation or {}
        return Implicated(
            users=tuple((u["id"], u.get("display", "")) for u in inv.get("users", [])),
            service_principals=tuple((s["id"], s.get("display", "")) for s in inv.get("service_principals", [])),
        )


class Action(Protocol):
    name: ClassVar[str]
    reversible: ClassVar[bool]

    def plan(self, ctx: ActionContext) -> list[Target]: ...

    def verify(self, ctx: ActionContext, target: Target) -> bool: ...

    def execute(self, ctx: ActionContext, target: Target) -> Outcome: ...

    def undo(self, ctx: ActionContext, target: Target, recorded: dict[str, Any]) -> Outcome: ...
