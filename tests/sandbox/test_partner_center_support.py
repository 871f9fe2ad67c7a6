"""Shared helpers for the Partner Center and webhook stand-in tests (no tests here).

Fixtures are plain generator functions; each test module registers the ones it uses with
``pytest.fixture(...)(function)`` so there are no cross-module fixture imports.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx

from sandbox import Sandbox, ids, start_sandbox
from shared.clients.partner_center import SCOPE, PartnerCenterClient
from shared.http import MicrosoftClient, RetryPolicy, ssl_context

PC_AUDIENCE = "https://api.partnercenter.microsoft.com"


class FakeClock:
    """Records the client's retry delays instead of sleeping."""

    def __init__(self) -> None:
        self.now = 0.0
        self.delays: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.delays.append(seconds)
        self.now += seconds


def redeem(sandbox: Sandbox, *, tenant: str = ids.PARTNER_TENANT_ID, scope: str = SCOPE) -> str:
    """An App+User access token from the sandbox Entra token endpoint (refresh-token grant)."""
    refresh_token = sandbox.services["entra"].issue_refresh_token()  # type: ignore[attr-defined]
    secret = next(a["secret"] for a in sandbox.scenario["entra"]["apps"] if a["client_id"] == ids.PARTNER_APP_CLIENT_ID)
    response = httpx.post(
        f"{sandbox.url('entra')}/{tenant}/oauth2/v2.0/token",
        data={"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": ids.PARTNER_APP_CLIENT_ID,
              "client_secret": secret, "scope": scope},
        verify=ssl_context(sandbox.ca_cert_path),
    )
    response.raise_for_status()
    return str(response.json()["access_token"])


def module_sandbox() -> Iterator[Sandbox]:
    """A sandbox with the default scenario, for one test module."""
    instance = start_sandbox()
    try:
        yield instance
    finally:
        instance.stop()


def module_token(pc_sandbox: Sandbox) -> str:
    """An App+User Partner Center token (valid for the whole module)."""
    return redeem(pc_sandbox)


def fresh_sandbox(pc_sandbox: Sandbox) -> Sandbox:
    """The module's sandbox, back to the default scenario with no faults."""
    pc_sandbox.reset()
    return pc_sandbox


def new_clock() -> FakeClock:
    return FakeClock()


def make_client(sandbox: Sandbox, token: str, clock: FakeClock, **policy: Any) -> PartnerCenterClient:
    http = MicrosoftClient(sandbox.url("partner_center"), token=lambda: token,
                           verify=ssl_context(sandbox.ca_cert_path), retry=RetryPolicy(**policy),
                           sleep=clock.sleep, clock=clock, service="Partner Center")
    return PartnerCenterClient(sandbox.url("partner_center"), token=lambda: token, http=http)


def pc_client(sandbox: Sandbox, pc_token: str, clock: FakeClock) -> Iterator[PartnerCenterClient]:
    with make_client(sandbox, pc_token, clock) as instance:
        yield instance
