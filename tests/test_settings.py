"""Settings: one typed module, defaults to the real Microsoft endpoints, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared.settings import SPECS, SettingsError, load_settings

ROOT = Path(__file__).resolve().parent.parent
NO_FILE = ROOT / "no-such-local-settings.json"
BASE = {"AzureWebJobsStorage": "UseDevelopmentStorage=true"}


def test_defaults_are_the_real_microsoft_endpoints() -> None:
    s = load_settings(BASE, local_settings=NO_FILE)
    assert s.partner_center_url == "https://api.partnercenter.microsoft.com"
    assert s.graph_url == "https://graph.microsoft.com"
    assert s.arm_url == "https://management.azure.com"
    assert s.entra_authority_host == "https://login.microsoftonline.com"
    assert s.poll_schedule == "0 */5 * * * *"
    assert s.webhook_max_body_bytes == 65536


def test_environment_overrides_local_settings(tmp_path: Path) -> None:
    local = tmp_path / "local.settings.json"
    local.write_text(json.dumps({"Values": {"GRAPH_URL": "https://graph.local.test", "LOG_LEVEL": "DEBUG"}}))
    s = load_settings({**BASE, "LOG_LEVEL": "WARNING"}, local_settings=local)
    assert s.graph_url == "https://graph.local.test"
    assert s.log_level == "WARNING"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PARTNER_CENTER_URL", "not a url"),
        ("POLL_SCHEDULE", "*/5 * * * *"),
        ("WEBHOOK_MAX_BODY_BYTES", "lots"),
        ("ALERT_SOURCES", "partner_center,carrier_pigeon"),
        ("ALLOW_AUTOMATIC_CANCELLATION", "maybe"),
        ("KEY_VAULT_URL", "http://vault.example"),
        ("SECURITY_CONTACTS", "soc-at-contoso"),
    ],
)
def test_malformed_setting_names_itself_and_an_example(name: str, value: str) -> None:
    with pytest.raises(SettingsError) as err:
        load_settings({**BASE, name: value}, local_settings=NO_FILE)
    message = str(err.value)
    assert message.startswith(f"{name}=")
    assert "example:" in message


def test_missing_storage_connection_is_named() -> None:
    with pytest.raises(SettingsError, match="AzureWebJobsStorage is not set; example"):
        load_settings({}, local_settings=NO_FILE)


def test_identity_based_storage_connection() -> None:
    s = load_settings({"AzureWebJobsStorage__accountName": "contosofraud"}, local_settings=NO_FILE)
    assert s.storage.uses_identity
    assert s.storage.table_service_uri == "https://contosofraud.table.core.windows.net"
    assert s.storage.queue_service_uri == "https://contosofraud.queue.core.windows.net"


def test_storage_description_never_shows_the_key() -> None:
    conn = ("DefaultEndpointsProtocol=https;AccountName=contoso;AccountKey=c2VjcmV0c2VjcmV0;"
            "EndpointSuffix=core.windows.net")
    s = load_settings({"AzureWebJobsStorage": conn}, local_settings=NO_FILE)
    assert "c2VjcmV0" not in s.storage.describe()
    assert "contoso" in s.storage.describe()


def test_sample_settings_list_every_setting_with_its_default_and_meaning() -> None:
    sample = json.loads((ROOT / "local.settings.sample.json").read_text())
    for spec in SPECS:
        assert spec.name in sample["Values"], f"{spec.name} missing from local.settings.sample.json"
        assert sample["Values"][spec.name] == (spec.default or ""), spec.name
        assert sample["Descriptions"][spec.name] == spec.description, spec.name


def test_the_settings_doc_lists_every_setting() -> None:
    readme = (ROOT / "docs" / "settings.md").read_text()
    missing = [spec.name for spec in SPECS if f"`{spec.name}`" not in readme]
    assert not missing, f"docs/settings.md settings table lacks {missing}"


def test_settings_module_is_the_only_reader_of_the_environment() -> None:
    offenders = []
    for path in [*ROOT.glob("shared/**/*.py"), *ROOT.glob("functions/**/*.py"), ROOT / "function_app.py"]:
        if path.name == "settings.py":
            continue
        text = path.read_text()
        if "os.environ" in text or "os.getenv" in text:
            offenders.append(str(path.relative_to(ROOT)))
    assert not offenders
