"""GET /api/health: 200 with every part ok, or 503 naming the failing part."""

from __future__ import annotations

import json

import azure.functions as func

from devhost.azurite import Azurite
from sandbox.core import Sandbox
from shared.health import build_report
from shared.settings import load_settings
from tests.conftest import settings_env


def call_health() -> func.HttpResponse:
    import function_app
    from devhost.app import functions_of

    fn = next(f for f in functions_of(function_app.app) if f.get_function_name() == "health")
    response: func.HttpResponse = fn.get_user_function()(func.HttpRequest("GET", "/api/health", body=b""))
    return response


def test_every_part_ok_against_azurite_and_the_sandbox(azurite: Azurite, fresh_sandbox: Sandbox) -> None:
    report = build_report(load_settings(settings_env(azurite, **fresh_sandbox.app_settings())))
    doc = report.as_dict()
    assert doc["status"] == "ok", doc
    assert set(doc["parts"]) == {"settings", "storage", "key_vault", "tokens", "sources", "policy"}
    assert doc["parts"]["key_vault"]["refresh_token_last_rolled"]


def test_unreachable_storage_is_named(fresh_sandbox: Sandbox) -> None:
    conn = ("DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;"
            "TableEndpoint=http://127.0.0.1:9/devstoreaccount1;QueueEndpoint=http://127.0.0.1:9/devstoreaccount1;")
    report = build_report(load_settings({"AzureWebJobsStorage": conn, **fresh_sandbox.app_settings()}))
    assert report.failing() == ["storage", "tokens", "sources"]
    assert "a2V5" not in json.dumps(report.as_dict())


def test_missing_key_vault_and_bad_policy_are_named(azurite: Azurite, tmp_path: object) -> None:
    from pathlib import Path

    bad = Path(str(tmp_path)) / "policy.toml"
    bad.write_text('[[rules]]\nname = "x"\nactions = [{ action = "launch_missiles", mode = "enforce" }]\n')
    report = build_report(load_settings(settings_env(azurite, POLICY_PATH=str(bad))))
    assert set(report.failing()) == {"key_vault", "policy"}
    assert "KEY_VAULT_URL" in report.parts["key_vault"].detail
    assert "launch_missiles" in report.parts["policy"].detail


def test_health_function_answers_503_with_json_when_a_part_fails(monkeypatch: object) -> None:
    import pytest

    mp: pytest.MonkeyPatch = monkeypatch  # type: ignore[assignment]
    from shared.settings import reset_settings_cache

    mp.setenv("AzureWebJobsStorage", "UseDevelopmentStorage=true")
    mp.setenv("POLL_SCHEDULE", "every five minutes")
    mp.setenv("FRAUD_RESPONDER_LOCAL_SETTINGS", "no-such-file.json")
    reset_settings_cache()
    try:
        response = call_health()
    finally:
        reset_settings_cache()
    assert response.status_code == 503
    doc = json.loads(response.get_body())
    assert doc["failing"] == ["settings"] and "POLL_SCHEDULE" in doc["parts"]["settings"]["detail"]
