"""Issue 10 item 13: Graph answers app-only partner-alert calls 403 Unauthorized_MissingMFA.

The Graph source then reads the alerts with the delegated SAM token (App+User, redeemed for Graph
in the partner tenant), records that it did, and goes back to app-only once Graph accepts it again.
Real MSAL, Key Vault, httpx and Azurite against the sandbox's Graph switch ``alerts_require_mfa``.
"""

from __future__ import annotations

from typing import Any

from devhost.azurite import Azurite
from sandbox.core import Sandbox
from sandbox.tokens import unverified_claims
from shared.intake.jobs import IntakeRuntime, run_sync
from shared.intake.sync import SyncScope
from shared.operations.token_status import token_status
from shared.settings import load_settings
from tests.conftest import settings_env


def runtime(azurite: Azurite, sandbox: Sandbox) -> IntakeRuntime:
    return IntakeRuntime.from_settings(load_settings(settings_env(azurite, **sandbox.app_settings())))


def alert_calls(sandbox: Sandbox) -> list[tuple[int, str]]:
    """(status, token kind: app or user) of each partner-alert listing call."""
    calls = []
    for request in sandbox.requests("graph"):
        if request.path.endswith("/securityAlerts"):
            token = request.headers.get("Authorization", request.headers.get("authorization", "")).split()[-1]
            calls.append((request.status, str(unverified_claims(token).get("idtyp"))))
    return calls


def test_graph_source_falls_back_to_the_delegated_sam_token_and_records_it(azurite: Azurite,
                                                                           fresh_sandbox: Sandbox) -> None:
    graph: Any = fresh_sandbox.services["graph"]
    rt = runtime(azurite, fresh_sandbox)
    baseline = run_sync(rt, SyncScope(), trigger="test", sources=("graph",))
    assert baseline.ok
    fetched = baseline.results["graph"].fetched
    assert token_status(rt.settings, rt.store)["graph_alerts"]["mode"] == "app_only"
    fresh_sandbox.clear_requests()
    graph.set_state(alerts_require_mfa=True)

    run = run_sync(rt, SyncScope(), trigger="test", sources=("graph",))

    assert run.ok, run.as_dict()
    assert run.results["graph"].fetched == fetched  # nothing missed
    calls = alert_calls(fresh_sandbox)
    assert calls[0] == (403, "app") and calls[1:] and set(calls[1:]) == {(200, "user")}
    status = token_status(rt.settings, rt.store)
    mode = status["graph_alerts"]
    assert mode["mode"] == "delegated" and "Unauthorized_MissingMFA" in mode["reason"] and mode["since"]
    assert status["ok"]  # alerts still flow: a warning, not a failure
    from tests.operations.test_token_status import assert_published_shape

    assert_published_shape(status)
    assert any("delegated" in w and "Unauthorized_MissingMFA" in w for w in status["warnings"])

    # The same process asks app-only first again on the next run (Graph may have been fixed) ...
    graph.set_state(alerts_require_mfa=False)
    fresh_sandbox.clear_requests()
    assert run_sync(rt, SyncScope(), trigger="test", sources=("graph",)).ok
    assert set(alert_calls(fresh_sandbox)) == {(200, "app")}
    healed = token_status(rt.settings, rt.store)
    assert healed["graph_alerts"]["mode"] == "app_only"
    assert not any("delegated" in w for w in healed["warnings"])


def test_when_the_delegated_token_is_refused_too_the_run_says_so(azurite: Azurite, fresh_sandbox: Sandbox) -> None:
    fresh_sandbox.services["graph"].set_state(alerts_require_mfa=True)  # type: ignore[attr-defined]
    fresh_sandbox.services["entra"].set_state(refresh_token_state="mfa_required")  # type: ignore[attr-defined]
    rt = runtime(azurite, fresh_sandbox)

    run = run_sync(rt, SyncScope(), trigger="test", sources=("graph",))

    assert not run.ok and "AADSTS50076" in run.token_errors["graph"]
    status = token_status(rt.settings, rt.store)
    assert status["state"] == "failing"
    assert any("New-PartnerAccessToken" in step for step in status["next_steps"])
