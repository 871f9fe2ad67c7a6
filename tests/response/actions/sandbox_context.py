"""Helpers for action tests: the sandbox's alerts as Alert objects and an ActionContext on real clients.

The context is what the engine builds: real settings pointing at the sandbox and Azurite, real
clients (MSAL, Key Vault, httpx over TLS), and the policy's parameter defaults filled in.
"""

from __future__ import annotations

from typing import Any

from devhost.azurite import Azurite
from sandbox.core import Sandbox
from shared.alerts import Alert
from shared.response import catalogue
from shared.response.actions.base import ActionContext, Clients
from shared.settings import load_settings
from shared.sources.graph import parse as from_graph
from shared.sources.partner_center import parse as from_partner_center
from shared.storage.tables import TableStore
from tests.conftest import REPO_ROOT, settings_env


def pc_alert(sandbox: Sandbox, event_id: str) -> Alert:
    """A Partner Center fraud event of the sandbox's scenario, parsed as the intake parses it."""
    service: Any = sandbox.services["partner_center"]
    record = next(a for a in service.alerts if a["eventId"] == event_id)
    return from_partner_center(record)


def graph_alert(sandbox: Sandbox, alert_id: str) -> Alert:
    service: Any = sandbox.services["graph"]
    return from_graph(service.alert(alert_id))


def action_context(azurite: Azurite, sandbox: Sandbox, alert: Alert, action: str, *,
                   investigation: dict[str, Any] | None = None, actor: str = "policy:test",
                   **params: Any) -> ActionContext:
    """A context for ``action`` with its policy defaults, overridden by ``params``."""
    settings = load_settings(settings_env(azurite, **sandbox.app_settings()),
                             local_settings=REPO_ROOT / "does-not-exist.json")
    defaults = catalogue.spec(action).defaults()
    return ActionContext(settings=settings, alert=alert, params={**defaults, **params},
                         clients=Clients(settings, TableStore(settings)), actor=actor, investigation=investigation)


def same_store(ctx: ActionContext, alert: Alert, action: str, **params: Any) -> ActionContext:
    """Another context on the same settings, store and clients (a redelivered job, an approval)."""
    defaults = catalogue.spec(action).defaults()
    return ActionContext(settings=ctx.settings, alert=alert, params={**defaults, **params}, clients=ctx.clients,
                         actor=ctx.actor, investigation=ctx.investigation)
