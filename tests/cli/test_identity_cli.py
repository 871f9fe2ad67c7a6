"""Who the CLI records as deciding: the credential it acts with, never a typed name."""

from __future__ import annotations

import os

from devhost.azurite import Azurite
from sandbox import ids
from sandbox.core import Sandbox
from sandbox.tokens import unverified_claims
from tests.cli.test_alerts_cli import cli
from tests.conftest import settings_env


def test_against_azurite_the_local_os_user_marked_local(azurite: Azurite) -> None:
    env = {**os.environ, **settings_env(azurite), "FRAUD_RESPONDER_LOCAL_SETTINGS": "no-such-file.json",
           "LOGNAME": "alice", "USER": "alice"}
    out = cli(env, "whoami")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "local:alice"


def test_against_a_storage_account_the_signed_in_entra_identity(fresh_sandbox: Sandbox) -> None:
    # A real (identity-based) storage account: the CLI's DefaultAzureCredential signs in, here as the
    # operator application through the environment credential against the sandbox's Entra.
    env = {**os.environ, **fresh_sandbox.app_settings(), "FRAUD_RESPONDER_LOCAL_SETTINGS": "no-such-file.json",
           "AzureWebJobsStorage__accountName": "contosofraud", "AZURE_TENANT_ID": ids.PARTNER_TENANT_ID,
           "AZURE_CLIENT_ID": ids.OPERATOR_APP_CLIENT_ID, "AZURE_CLIENT_SECRET": ids.OPERATOR_APP_SECRET,
           "LOGNAME": "mallory", "USER": "mallory"}
    env.pop("AzureWebJobsStorage", None)
    out = cli(env, "whoami")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"app:{ids.OPERATOR_APP_CLIENT_ID}"
    env["AZURE_CLIENT_SECRET"] = "wrong"
    refused = cli(env, "whoami")
    assert refused.returncode == 1 and "cannot tell who you are" in refused.stderr and "wrong" not in refused.stderr


def test_api_token_gets_a_sandbox_operator_token_for_the_admin_api(azurite: Azurite, fresh_sandbox: Sandbox) -> None:
    env = {**os.environ, **settings_env(azurite, **fresh_sandbox.app_settings()),
           "FRAUD_RESPONDER_LOCAL_SETTINGS": "no-such-file.json"}
    out = cli(env, "api-token", "--user", "alice@contoso-csp.example")
    assert out.returncode == 0, out.stderr
    claims = unverified_claims(out.stdout.strip())
    assert claims["aud"] == ids.ADMIN_API_CLIENT_ID and "FraudResponder.Decide" in claims["roles"]
    missing = cli(env, "api-token")
    assert missing.returncode == 1 and "--user" in missing.stderr
