"""The action catalogue: every action a policy may name, described once.

Each entry is an :class:`ActionSpec`: the name, the module that implements it (imported only
when the action runs, so cold start and ``policy check`` stay light), its parameters, its run
order and what kind of action it is (read-only, reversible, destructive, containment, needs the
investigation, provides it, reports). Everything else asks this module instead of listing names
again: policy validation and the effective-mode rules (``shared.response.policy``), the engine's
order, ``fraud-responder policy check``, the actions table in ``docs/policy.md``
(:func:`markdown_table`; a test keeps the doc in step) and the OpenAPI enums.

How to add an action:

1. write ``shared/response/actions/<name>.py`` with a module-level ``ACTION`` (the contract is in
   ``shared/response/actions/base.py``);
2. add one ``ActionSpec`` to ``_BUILT_IN`` below (or, from a plug-in or a test, call
   :func:`register` with a spec whose ``module`` is the dotted path of your module);
3. name it in a policy. Regenerate the docs table with ``python -m shared.response.catalogue``.

Light on purpose: no I/O and no imports beyond the standard library.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Final, Literal

from shared.errors import FraudResponderError

ParamValue = bool | float | str | tuple[str, ...]

ACTIONS_PACKAGE: Final = "shared.response.actions"
"""Where a built-in action's module lives when its spec gives no ``module``."""


@dataclass(frozen=True)
class ParamSpec:
    """One action parameter: its type, default and (for text) the allowed values."""

    kind: Literal["bool", "number", "choice", "choice_list"]
    default: ParamValue
    description: str
    choices: tuple[str, ...] = ()

    def type_name(self) -> str:
        if self.kind == "bool":
            return "true or false"
        if self.kind == "number":
            return "a number of 0 or more"
        if self.kind == "choice":
            return "one of " + ", ".join(f'"{c}"' for c in self.choices)
        return "a non-empty list of " + ", ".join(f'"{c}"' for c in self.choices)


@dataclass(frozen=True)
class ActionSpec:
    """What the policy, the engine and the docs need to know about one action, without importing it."""

    name: str
    summary: str
    """One line for the docs table: what the action does."""
    order: int
    """Position in a job: lower runs first (status 0, investigation 10, containment 20-60, report 90)."""
    reversible: bool
    params: Mapping[str, ParamSpec] = field(default_factory=dict)
    module: str = ""
    """Dotted path of the module defining ``ACTION``; empty = ``shared.response.actions.<name>``."""
    read_only: bool = False
    """Changes nothing in the customer's tenant: the only kind still run for a resolved alert."""
    repeatable: bool = False
    """Running it again has the effect of running it once (it reads and records what it found): the engine
    writes no ``called_at`` mark before the call, since a worker that took the row over may simply run it again."""
    destructive: bool = False
    """Enforce waits for an operator's approval unless ALLOW_AUTOMATIC_CANCELLATION is true."""
    containment: bool = False
    """Contains an alert: must not run once the alert is resolved as legitimate or ignore."""
    needs_investigation: bool = False
    """Acts on what the investigation found: waits while the investigation is being retried."""
    provides_investigation: bool = False
    """Writes the investigation the others read: the engine keeps the document it wrote or found (its context's
    ``investigation``), and reads the stored one only when it has neither."""
    reports: bool = False
    """Tells people what happened: runs last with the job's summary; the fallback and test-alert action."""
    resolves: bool = False
    """Writes the alert's status to its source: an operator's resolve is done and recorded as this action
    (its module also defines ``resolve_alert(settings, store, alert_key, reason, operator)``)."""
    check_params: Callable[[Mapping[str, ParamValue]], str] | None = None
    """Rules across parameters: the problem as one sentence, or "" when the combination is fine."""
    order_for: Callable[[Mapping[str, ParamValue]], int] | None = None
    """When the position depends on the parameters (update_status: first or after containment)."""

    def defaults(self) -> dict[str, ParamValue]:
        return {k: s.default for k, s in self.params.items()}

    def run_order(self, params: Mapping[str, ParamValue]) -> int:
        return self.order_for(params) if self.order_for is not None else self.order


def _status_order(params: Mapping[str, ParamValue]) -> int:
    """Marking the alert investigating goes first; resolving it comes after containment."""
    return 0 if params.get("status", "investigating") == "investigating" else 70


def _status_params(params: Mapping[str, ParamValue]) -> str:
    if params.get("status") == "resolved" and not params.get("reason"):
        return 'status = "resolved" needs a reason; valid reasons: fraud, ignore, legitimate'
    if params.get("status") != "resolved" and params.get("reason"):
        return 'reason is only used with status = "resolved"; remove it or set that status'
    return ""


_BUILT_IN: Final = (
    ActionSpec(
        "notify", "e-mail (Graph sendMail) and an optional Teams/Slack webhook, saying what was done and what "
        "waits for approval", order=90, reversible=False, read_only=True, reports=True, params={
            "to": ParamSpec("choice_list", ("partner",), "who is told: the partner's security contacts, the "
                            "customer's contacts (from the contacts table), or both", ("partner", "customer")),
            "webhook": ParamSpec("bool", True, "also post to the Teams/Slack webhook when one is configured"),
            "throttle_hours": ParamSpec("number", 1.0, "at most one notification per subscription and alert type "
                                        "in this many hours; 0 = every time"),
        }),
    ActionSpec(
        "investigate", "reads the ARM activity log around the alert window and records who created or changed "
        "the affected resources", order=10, reversible=False, read_only=True, repeatable=True,
        provides_investigation=True),
    ActionSpec(
        "stop_resources", "stops the affected resources through ARM", order=20, reversible=True, containment=True,
        params={"operation": ParamSpec("choice", "deallocate", "deallocate (stops billing, keeps disks) or "
                                       "power_off (keeps the allocation)", ("deallocate", "power_off"))}),
    ActionSpec(
        "revoke_sessions", "revokes the sign-in sessions of the implicated users", order=30, reversible=False,
        containment=True, needs_investigation=True,
        params={"include_global_admins": ParamSpec("bool", False, "also revoke the sessions of the customer's "
                                                   "Global Administrators, not only the implicated users")}),
    ActionSpec(
        "rotate_credentials", "resets implicated users and rotates the secrets of implicated service principals",
        order=40, reversible=False, containment=True, needs_investigation=True, params={
            "users": ParamSpec("bool", True, "reset the passwords of implicated users"),
            "applications": ParamSpec("bool", True, "rotate the secrets of implicated service principals"),
        }),
    ActionSpec(
        "report_admin_recovery_methods", "reports each Global Administrator's registered recovery e-mail and phone "
        "methods, flagging those added or changed recently (masked except in the incident record)", order=15,
        reversible=False, read_only=True, params={
            "recent_days": ParamSpec("number", 7.0, "a method registered this many days before the alert was first "
                                     "seen, or since, is flagged as recent"),
        }),
    ActionSpec(
        "require_admin_password_change", "requires every Global Administrator of the customer to change password "
        "at next sign-in, with MFA", order=35, reversible=True, containment=True, destructive=True),
    ActionSpec(
        "suspend_subscription", "suspends the customer's Azure plan in Partner Center", order=50, reversible=True,
        containment=True),
    ActionSpec(
        "cancel_azure_subscription", "cancels the Azure subscription (entitlement) with reason compromise",
        order=60, reversible=True, containment=True, destructive=True),
    ActionSpec(
        "set_usage_budget", "sets the customer's monthly spending budget in Partner Center (a fixed amount, or a "
        "multiple of its recent spend)", order=80, reversible=True, params={
            "amount": ParamSpec("number", 0.0, "a fixed monthly amount; 0 = use multiple"),
            "multiple": ParamSpec("number", 1.5, "times the customer's recent monthly spend (from the billing "
                                  "export), rounded up to a hundred"),
            "minimum": ParamSpec("number", 100.0, "never less than this"),
            "replace_existing": ParamSpec("bool", False, "also change a budget the customer already has"),
        }),
    ActionSpec(
        "update_status", "writes the alert's status back to Microsoft", order=0, reversible=True,
        resolves=True, order_for=_status_order, check_params=_status_params, params={
            "status": ParamSpec("choice", "investigating", "the status written back to Microsoft",
                                ("investigating", "resolved")),
            "reason": ParamSpec("choice", "", 'with status = "resolved" only (and then required): why',
                                ("fraud", "ignore", "legitimate")),
        }),
    # --- issue 15: the fraud verdict's plan (policy [verdict.fraud]) -------------------------------------
    ActionSpec(
        "suspend_customer_subscriptions", "suspends every active subscription of the customer in Partner Center "
        "(the Azure plan and the licence-based ones), one ledger row per subscription", order=55, reversible=True,
        containment=True),
    ActionSpec(
        "remove_role_assignments", "deletes the Azure role assignments the implicated principals created in the "
        "incident window (from the investigation); undo recreates each as it was", order=45, reversible=True,
        containment=True, needs_investigation=True),
    ActionSpec(
        "open_service_request", "opens a Partner Center service request for a confirmed fraud with what Microsoft "
        "asks for (tenants, subscription, resources, impact start and end), once", order=80, reversible=False,
        containment=True, params={
            "severity": ParamSpec("choice", "critical", "the service request's severity",
                                  ("critical", "moderate", "minimal")),
            "topic": ParamSpec("choice", "fraud", "the support topic is the first whose name or description "
                               "mentions this word", ("fraud", "security", "billing", "azure")),
            "agent_locale": ParamSpec("choice", "en-US", "the locale of the organisation opening the request",
                                      ("en-US", "en-GB", "de-DE", "fr-FR", "es-ES", "it-IT", "nl-NL", "ja-JP")),
        }),
)

_lock = threading.Lock()
_specs: dict[str, ActionSpec] = {spec.name: spec for spec in _BUILT_IN}


class UnknownAction(FraudResponderError, LookupError):
    """A name that is not in the catalogue."""


def register(spec: ActionSpec) -> Callable[[], None]:
    """Add an action (a plug-in's, a test's); returns a function that removes it again.

    Raises ValueError when the name is taken or a parameter's choices or default make no sense.
    """
    for name, param in spec.params.items():
        if param.kind in ("choice", "choice_list") and not param.choices:
            raise ValueError(f"action {spec.name}: parameter {name} lists no choices")
        values = param.default if isinstance(param.default, tuple) else (param.default,)
        if param.kind.startswith("choice") and not all(v == "" or v in param.choices for v in values):
            raise ValueError(f"action {spec.name}: the default of parameter {name} is not one of its choices")
    with _lock:
        if spec.name in _specs:
            raise ValueError(f"action {spec.name!r} is already in the catalogue")
        _specs[spec.name] = spec

    def unregister() -> None:
        with _lock:
            if _specs.get(spec.name) is spec:
                del _specs[spec.name]

    return unregister


def names() -> tuple[str, ...]:
    """Every action a policy may name, in catalogue order."""
    return tuple(_specs)


def specs() -> Iterator[ActionSpec]:
    return iter(tuple(_specs.values()))


def get(name: str) -> ActionSpec | None:
    return _specs.get(name)


def spec(name: str) -> ActionSpec:
    """The spec of ``name``; UnknownAction (naming the catalogue) when there is none."""
    found = _specs.get(name)
    if found is None:
        raise UnknownAction(f"unknown action {name!r}; the catalogue is: {', '.join(_specs)}")
    return found


def read_only() -> tuple[str, ...]:
    return tuple(s.name for s in specs() if s.read_only)


def containment() -> tuple[str, ...]:
    return tuple(s.name for s in specs() if s.containment)


def reporter() -> ActionSpec:
    """The action that tells people (notify): the built-in fallback and the test-alert action."""
    return next(s for s in specs() if s.reports)


def resolver() -> ActionSpec:
    """The action that writes status back to the source (update_status): operators' resolve uses it."""
    return next(s for s in specs() if s.resolves)


def is_reporting(name: str) -> bool:
    found = _specs.get(name)
    return found is not None and found.reports


def markdown_table() -> str:
    """The actions table of ``docs/policy.md``, generated so the doc cannot drift from the catalogue."""
    lines = ["| Action | What it does | Parameters (default) |", "|---|---|---|"]
    for s in specs():
        traits = [t for t, on in (("read-only", s.read_only), ("reversible", s.reversible and not s.read_only),
                                  ("**destructive**: held at approve unless ALLOW_AUTOMATIC_CANCELLATION=true",
                                   s.destructive)) if on]
        what = s.summary + (f" ({'; '.join(traits)})" if traits else "")
        params = ". ".join(f"`{n}`: {p.type_name()} (`{_shown(p.default)}`), {p.description}"
                           for n, p in s.params.items()) or "none"
        lines.append(f"| `{s.name}` | {what} | {params} |")
    return "\n".join(lines)


def _shown(value: ParamValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return "[" + ", ".join(f'"{v}"' for v in value) + "]"
    if isinstance(value, float):
        return f"{value:g}"
    return f'"{value}"'


if __name__ == "__main__":
    print(markdown_table())
