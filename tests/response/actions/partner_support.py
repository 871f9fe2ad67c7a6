"""Helpers for the notify, update_status, suspend and cancel tests: contexts with extra settings.

Like sandbox_context.action_context, but settings can be overridden (a webhook secret name,
ALLOW_AUTOMATIC_CANCELLATION, an empty SECURITY_CONTACTS), and the alert can be stored in the
alerts table the way the sync stores it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from devhost.azurite import Azurite
from sandbox.core import Sandbox
from shared.alerts import Alert, to_entity
from shared.names import ALERTS_TABLE
from shared.response import catalogue
from shared.response.actions.base import ActionContext, Clients
from shared.settings import load_settings
from shared.storage.tables import TableStore
from tests.conftest import REPO_ROOT, settings_env


def context(azurite: Azurite, sandbox: Sandbox, alert: Alert, action: str, *, env: dict[str, str] | None = None,
            actor: str = "policy:test", test: bool = False, summary: dict[str, Any] | None = None,
            investigation: dict[str, Any] | None = None, **params: Any) -> ActionContext:
    """A context as the engine builds it: policy defaults, then ``params``; real clients."""
    settings = load_settings(settings_env(azurite, **{**sandbox.app_settings(), **(env or {})}),
                             local_settings=REPO_ROOT / "does-not-exist.json")
    defaults = catalogue.spec(action).defaults()
    return ActionContext(settings=settings, alert=alert, params={**defaults, **params},
                         clients=Clients(settings, TableStore(settings)), actor=actor, test=test,
                         summary=summary or {}, investigation=investigation)


def again(ctx: ActionContext, alert: Alert | None = None, *, actor: str | None = None, test: bool | None = None,
          summary: dict[str, Any] | None = None, **params: Any) -> ActionContext:
    """Another context on the same settings, store and clients (a redelivery, another alert, an approval)."""
    return ActionContext(settings=ctx.settings, alert=alert or ctx.alert, params={**ctx.params, **params},
                         clients=ctx.clients, actor=actor or ctx.actor, test=ctx.test if test is None else test,
                         summary=ctx.summary if summary is None else summary, investigation=ctx.investigation)


def store_alert(ctx: ActionContext, alert: Alert, *, version: int = 1) -> dict[str, Any]:
    """Write the alert row as the sync does; returns the entity."""
    entity = to_entity(alert, version=version, changed_at=datetime.now(UTC), reasons=["new alert"])
    entity["kind"] = "alert"
    ctx.clients.store.upsert(ALERTS_TABLE, entity, mode="replace")
    return entity
