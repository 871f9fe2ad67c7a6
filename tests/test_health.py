"""GET /api/health: 200 with every part ok, or 503 naming the failing part."""

from __future__ import annotations

import json
from collections.abc import Iterator

import azure.functions as func
import pytest

from devhost.azurite import Azurite
from sandbox.core import Sandbox
from shared.health import build_report, reset_summary_cache
from shared.settings import load_settings, reset_settings_cache
from tests.conftest import settings_env


def call_health(headers: dict[str, str] | None = None) -> func.HttpResponse:
    import function_app
    from devhost.app import functions_of

    fn = next(f for f in functions_of(function_app.app) if f.get_function_name() == "health")
    request = func.HttpRequest("GET", "/api/health", body=b"", headers=headers or {})
    response: func.HttpResponse = fn.get_user_function()(request)
    return response


@pytest.fixture
def app_environment(azurite: Azurite, fresh_sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The app's environment as the host gives it: Azurite and the sandbox; caches reset around the test."""
    for name, value in settings_env(azurite, **fresh_sandbox.app_settings()).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("FRAUD_RESPONDER_LOCAL_SETTINGS", "no-such-file.json")
    reset_settings_cache()
    reset_summary_cache()
    yield
    reset_settings_cache()
    reset_summary_cache()


def _vault_reads(sandbox: Sandbox) -> int:
    return len([r for r in sandbox.requests("key_vault") if r.method == "GET" and "/secrets/" in r.path])


def test_anonymous_health_says_only_up_or_down_and_ten_calls_make_one_round_of_checks(
        app_environment: None, fresh_sandbox: Sandbox) -> None:
    before = _vault_reads(fresh_sandbox)
    first = call_health()
    one_round = _vault_reads(fresh_sandbox) - before
    assert first.status_code == 200 and json.loads(first.get_body()) == {"status": "ok"}
    assert one_round >= 1  # the Key Vault client's challenge round trip and the read(s)
    for _ in range(9):
        again = call_health()
        assert again.status_code == 200 and json.loads(again.get_body()) == {"status": "ok"}
    assert _vault_reads(fresh_sandbox) - before == one_round  # 10 anonymous calls, one round of Key Vault reads
    assert "vault" not in first.get_body().decode().lower()


def test_health_details_need_a_token_with_the_read_role(app_environment: None, fresh_sandbox: Sandbox) -> None:
    from tests.admin.auth_support import BOB, bearer, user_token

    detailed = call_health(bearer(user_token(fresh_sandbox, BOB)))
    doc = json.loads(detailed.get_body())
    assert detailed.status_code == 200 and doc["status"] == "ok"
    assert set(doc["parts"]) == {"settings", "storage", "key_vault", "tokens", "policy", "sources", "detectors"}
    refused = call_health(bearer("not-a-token"))
    assert refused.status_code == 401 and refused.headers["WWW-Authenticate"].startswith("Bearer ")
    assert "parts" not in json.loads(refused.get_body())
    no_role = call_health(bearer(user_token(fresh_sandbox, "eve@contoso-csp.example", roles=[])))
    assert no_role.status_code == 403 and "FraudResponder.Read" in json.loads(no_role.get_body())["message"]


def test_every_part_ok_against_azurite_and_the_sandbox(azurite: Azurite, fresh_sandbox: Sandbox) -> None:
    report = build_report(load_settings(settings_env(azurite, **fresh_sandbox.app_settings())))
    doc = report.as_dict()
    assert doc["status"] == "ok", doc
    assert set(doc["parts"]) == {"settings", "storage", "key_vault", "tokens", "sources", "detectors",
                                 "policy"}
    assert doc["parts"]["key_vault"]["refresh_token_last_rolled"]


def test_unreachable_storage_is_named(fresh_sandbox: Sandbox) -> None:
    conn = ("DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;"
            "TableEndpoint=http://127.0.0.1:9/devstoreaccount1;QueueEndpoint=http://127.0.0.1:9/devstoreaccount1;")
    report = build_report(load_settings({"AzureWebJobsStorage": conn, **fresh_sandbox.app_settings()}))
    assert report.failing() == ["storage", "tokens", "sources", "detectors"]
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
    assert json.loads(response.get_body()) == {"status": "failing"}  # anonymous: no details
    report = build_report()  # what a token holder (or the CLI) sees
    assert report.failing() == ["settings"] and "POLL_SCHEDULE" in report.parts["settings"].detail


def test_a_failing_detector_is_named_by_health(azurite: Azurite) -> None:
    from shared.detection.runner import DetectRun, Tally, record_detectors
    from shared.storage.tables import TableStore

    settings = load_settings(settings_env(azurite))
    store = TableStore(settings)
    assert build_report(settings).parts["detectors"].detail == "no detection has run yet"
    record_detectors(store, DetectRun(detectors={"compute_burst": Tally(subscriptions=3),
                                                 "quota_jump": Tally(errors=["sub-1: HttpResponseError: 503"])}),
                     trigger="test")
    part = build_report(settings).parts["detectors"]
    assert not part.ok and part.detail == "quota_jump: sub-1: HttpResponseError: 503"
    assert part.extra["detectors"]["compute_burst"] == "ok"
