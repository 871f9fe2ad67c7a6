"""`fraud-responder token status`, run as a real process against Azurite and the sandbox's Key Vault and Entra ID."""

from __future__ import annotations

import json
import os

import pytest

from devhost.azurite import Azurite
from sandbox.core import Sandbox
from shared.settings import load_settings
from tests.cli.test_alerts_cli import cli
from tests.conftest import settings_env
from tests.operations.test_token_status import NO_FILE, age_refresh_token


@pytest.fixture
def env(azurite: Azurite, fresh_sandbox: Sandbox) -> dict[str, str]:
    return {**os.environ, **settings_env(azurite, **fresh_sandbox.app_settings()),
            "FRAUD_RESPONDER_LOCAL_SETTINGS": "no-such-file.json"}


def field(stdout: str, name: str) -> str:
    """The value of a ``name: value`` line of the status report."""
    return next(line.split(":", 1)[1].strip() for line in stdout.splitlines() if line.strip().startswith(name + ":"))


def test_healthy_token_shows_its_age_and_no_warning(env: dict[str, str]) -> None:
    out = cli(env, "token", "status", "--check")
    assert out.returncode == 0, out.stderr
    assert "ok: a Partner Center token was issued" in out.stderr
    assert field(out.stdout, "state") == "ok"
    assert field(out.stdout, "days left").startswith(("89 ", "90 "))
    assert field(out.stdout, "last error") == "none"
    assert field(out.stdout, "MFA readiness").startswith("ready: 1 of 1 App+User request(s) in 7 days carried MFA")
    assert field(out.stdout, "last rolled") and field(out.stdout, "expires if unused")
    assert "WARNING" not in out.stdout and "what to do" not in out.stdout


def test_near_expiry_warns_but_exits_0(env: dict[str, str], fresh_sandbox: Sandbox) -> None:
    age_refresh_token(fresh_sandbox, load_settings(env, local_settings=NO_FILE), days=80)
    out = cli(env, "token", "status")
    assert out.returncode == 0, out.stderr
    warning = [line for line in out.stdout.splitlines() if line.startswith("WARNING: ")]
    assert len(warning) == 1 and "9 day(s) left" in warning[0]
    assert field(out.stdout, "state") == "expiring"
    assert "New-PartnerAccessToken" in out.stdout.split("what to do:", 1)[1]


def test_expired_refresh_token_shows_the_error_and_the_reconsent_steps(env: dict[str, str],
                                                                       fresh_sandbox: Sandbox) -> None:
    fresh_sandbox.services["entra"].set_state(refresh_token_state="expired")  # type: ignore[attr-defined]
    out = cli(env, "token", "status", "--check")
    assert out.returncode == 1
    assert out.stderr.startswith("redeeming") and "failed: The Secure Application Model refresh token" in out.stderr
    assert field(out.stdout, "state") == "failing"
    assert "AADSTS700082" in field(out.stdout, "last error")
    steps = out.stdout.split("what to do:", 1)[1]
    assert "New-PartnerAccessToken" in steps and "new version of secret partner-center-refresh-token" in steps
    assert "fraud-responder token status --check" in steps

    as_json = cli(env, "token", "status", "--json")
    assert as_json.returncode == 1
    doc = json.loads(as_json.stdout)
    assert doc["last_error"]["kind"] == "refresh_token_expired" and doc["next_steps"]
