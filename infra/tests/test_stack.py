"""The Pulumi program under mocks: what `pulumi up` would ask Azure to create, and how."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from components import access
from components.config import ConfigError, config_key
from components.function_app import FLEX_REJECTED_SETTINGS
from conftest import APP_PRINCIPAL, DEPLOYER, SUBSCRIPTION, RecordingMocks, Registered, deploy

from shared.names import QUEUES, TABLES, poison_queue
from shared.settings import SPECS

# How the engine marks a secret value (pulumi.runtime.rpc's well-known signature).
SECRET_SIG = "4dabf18193072939515e22adb298388d"
SECRET_SIG_VALUE = "1b47061264138c4ac30d75fd1eb44270"


@pytest.fixture(scope="module")
def default() -> RecordingMocks:
    return deploy()


def _settings(mocks: RecordingMocks) -> dict[str, str]:
    app = mocks.one("azure-native:web:WebApp")
    return {pair["name"]: pair["value"] for pair in app.inputs["siteConfig"]["appSettings"]}


def _assignments(mocks: RecordingMocks) -> dict[str, dict[str, Any]]:
    return {r.name: r.inputs for r in mocks.of_type("azure-native:authorization:RoleAssignment")}


def test_resource_inventory(default: RecordingMocks) -> None:
    counts = Counter(r.typ for r in default.resources if r.typ.startswith("azure-native:"))
    assert counts == {
        "azure-native:resources:ResourceGroup": 1,
        "azure-native:storage:StorageAccount": 1,
        "azure-native:storage:BlobContainer": 1,
        "azure-native:storage:Table": len(TABLES),
        "azure-native:storage:Queue": 2 * len(QUEUES),
        "azure-native:keyvault:Vault": 1,
        "azure-native:keyvault:Secret": 1,  # the refresh token: scope of the app's write access
        "azure-native:operationalinsights:Workspace": 1,
        "azure-native:applicationinsights:Component": 1,
        "azure-native:web:AppServicePlan": 1,
        "azure-native:web:WebApp": 1,
        "azure-native:web:WebAppFtpAllowed": 1,
        "azure-native:web:WebAppScmAllowed": 1,
        "azure-native:authorization:RoleAssignment": 10,
    }
    assert len(default.of_type("pulumi-python:dynamic:Resource")) == 1  # the code deployment


def test_tables_and_queues_are_the_apps_names() -> None:
    mocks = deploy({"tableNamePrefix": "fraud"})
    tables = {r.inputs["tableName"] for r in mocks.of_type("azure-native:storage:Table")}
    assert tables == {f"fraud{name}" for name in TABLES}
    queues = {r.inputs["queueName"] for r in mocks.of_type("azure-native:storage:Queue")}
    assert queues == {*QUEUES, *(poison_queue(q) for q in QUEUES)}
    assert _settings(mocks)["TABLE_NAME_PREFIX"] == "fraud"


def test_storage_account_is_locked_down(default: RecordingMocks) -> None:
    account = default.one("azure-native:storage:StorageAccount").inputs
    assert account["enableHttpsTrafficOnly"] is True
    assert account["minimumTlsVersion"] == "TLS1_2"
    assert account["allowBlobPublicAccess"] is False
    assert account["allowSharedKeyAccess"] is False
    assert default.one("azure-native:storage:BlobContainer").inputs["publicAccess"] == "None"


def test_key_vault_is_rbac_with_soft_delete_and_purge_protection(default: RecordingMocks) -> None:
    props = default.one("azure-native:keyvault:Vault").inputs["properties"]
    assert props["enableRbacAuthorization"] is True
    assert props["enableSoftDelete"] is True
    assert props["enablePurgeProtection"] is True
    assert props["accessPolicies"] == []


def test_refresh_token_secret_is_a_placeholder_without_a_secret_config(default: RecordingMocks) -> None:
    secret = default.one("azure-native:keyvault:Secret").inputs
    assert secret["secretName"] == "partner-center-refresh-token"
    assert secret["properties"]["value"].startswith("placeholder")
    assert SECRET_SIG not in secret["properties"]
    assert secret["tags"]["placeholder"] == "true"


def test_secret_config_values_become_key_vault_secrets() -> None:
    mocks = deploy({"refreshToken": "rt-value", "graphAppClientSecret": "graph-value",
                    "notifyWebhookSecretName": "notify-webhook-url", "notifyWebhookUrl": "https://hooks.example/x"},
                   secret_keys=("refreshToken", "graphAppClientSecret", "notifyWebhookUrl"))
    props = {r.inputs["secretName"]: r.inputs["properties"] for r in mocks.of_type("azure-native:keyvault:Secret")}
    # Each value reaches the engine wrapped as a Pulumi secret (encrypted in state), never plain.
    assert all(p.get(SECRET_SIG) == SECRET_SIG_VALUE for p in props.values()), props
    secrets = {name: p["value"]["value"] for name, p in props.items()}
    assert secrets == {"partner-center-refresh-token": "rt-value", "graph-app-client-secret": "graph-value",
                       "notify-webhook-url": "https://hooks.example/x"}
    settings = _settings(mocks)
    assert "rt-value" not in settings.values() and "graph-value" not in settings.values()


def test_clear_text_secret_in_stack_config_is_refused() -> None:
    with pytest.raises(Exception, match=r"clear text.*pulumi config set --secret refreshToken"):
        deploy({"refreshToken": "rt-value"})


def test_bad_setting_fails_with_the_config_key_and_an_example() -> None:
    with pytest.raises(Exception, match=r"pollSchedule=.*example: pulumi config set pollSchedule") as err:
        deploy({"pollSchedule": "*/5 * * * *"})
    assert err.errisinstance(ConfigError) or "ConfigError" in repr(err.value)


def test_function_app_is_flex_python_311_https_only_without_ftp(default: RecordingMocks) -> None:
    plan = default.one("azure-native:web:AppServicePlan").inputs
    assert plan["sku"] == {"name": "FC1", "tier": "FlexConsumption"}
    assert plan["reserved"] is True
    app = default.one("azure-native:web:WebApp").inputs
    assert app["kind"] == "functionapp,linux"
    assert app["httpsOnly"] is True
    assert app["identity"]["type"] == "SystemAssigned"
    config = app["functionAppConfig"]
    assert config["runtime"] == {"name": "python", "version": "3.11"}
    storage = config["deployment"]["storage"]
    assert storage["type"] == "blobContainer"
    assert storage["value"] == "https://contosost" + storage["value"].split("contosost")[1]
    assert storage["value"].endswith(".blob.core.windows.net/app-package")
    assert storage["authentication"] == {"type": "SystemAssignedIdentity"}
    assert config["scaleAndConcurrency"]["maximumInstanceCount"] == 40
    site = app["siteConfig"]
    assert site["ftpsState"] == "Disabled"
    assert site["minTlsVersion"] == "1.2"
    assert site["scmMinTlsVersion"] == "1.2"
    assert default.one("azure-native:web:WebAppFtpAllowed").inputs["allow"] is False
    assert default.one("azure-native:web:WebAppScmAllowed").inputs["allow"] is False


def test_every_deployable_setting_is_an_app_setting(default: RecordingMocks) -> None:
    settings = _settings(default)
    missing = [spec.name for spec in SPECS if spec.deploy and spec.name not in settings]
    assert missing == []
    local_only = [spec.name for spec in SPECS if not spec.deploy and spec.name in settings]
    assert local_only == []
    for spec in SPECS:
        if spec.deploy and spec.name != "KEY_VAULT_URL":
            assert settings[spec.name] == (spec.default or ""), spec.name
    assert settings["KEY_VAULT_URL"].startswith("https://contoso-kv-")
    assert settings["KEY_VAULT_URL"].endswith(".vault.azure.net")


def test_stack_config_overrides_settings_by_camel_case_name() -> None:
    mocks = deploy({"pollSchedule": "0 */2 * * * *", "securityContacts": "soc@contoso.com",
                    "alertSources": "partner_center,graph", "maximumInstances": "10"})
    settings = _settings(mocks)
    assert settings["POLL_SCHEDULE"] == "0 */2 * * * *"
    assert settings["SECURITY_CONTACTS"] == "soc@contoso.com"
    assert settings["ALERT_SOURCES"] == "partner_center,graph"
    scale = mocks.one("azure-native:web:WebApp").inputs["functionAppConfig"]["scaleAndConcurrency"]
    assert scale["maximumInstanceCount"] == 10
    assert config_key(next(s for s in SPECS if s.name == "POLICY_PATH")) == "policyPath"


def test_storage_and_telemetry_are_identity_based_and_flex_settings_absent(default: RecordingMocks) -> None:
    settings = _settings(default)
    assert settings["AzureWebJobsStorage__accountName"].startswith("contosost")
    assert settings["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"] == "Authorization=AAD"
    assert settings["APPLICATIONINSIGHTS_CONNECTION_STRING"].startswith("InstrumentationKey=")
    assert FLEX_REJECTED_SETTINGS.isdisjoint(settings)
    assert not any("AccountKey=" in value for value in settings.values())
    assert default.one("azure-native:applicationinsights:Component").inputs["disableLocalAuth"] is True


def _scope_of(mocks: RecordingMocks, typ: str) -> str:
    return mocks.one(typ).id


def test_role_assignments_scopes_and_roles(default: RecordingMocks) -> None:
    account = _scope_of(default, "azure-native:storage:StorageAccount")
    vault = _scope_of(default, "azure-native:keyvault:Vault")
    container = _scope_of(default, "azure-native:storage:BlobContainer")
    insights = _scope_of(default, "azure-native:applicationinsights:Component")
    token_secret = _scope_of(default, "azure-native:keyvault:Secret")
    expected = {
        "app-blob-owner": (access.STORAGE_BLOB_DATA_OWNER, account, APP_PRINCIPAL),
        "app-queue-contributor": (access.STORAGE_QUEUE_DATA_CONTRIBUTOR, account, APP_PRINCIPAL),
        "app-table-contributor": (access.STORAGE_TABLE_DATA_CONTRIBUTOR, account, APP_PRINCIPAL),
        "app-telemetry-publisher": (access.MONITORING_METRICS_PUBLISHER, insights, APP_PRINCIPAL),
        "app-secrets-user": (access.KEY_VAULT_SECRETS_USER, vault, APP_PRINCIPAL),
        "app-refresh-token-officer": (access.KEY_VAULT_SECRETS_OFFICER, token_secret, APP_PRINCIPAL),
        "app-customer-secrets-officer": (access.KEY_VAULT_SECRETS_OFFICER, vault, APP_PRINCIPAL),
        "deployer-package-writer": (access.STORAGE_BLOB_DATA_CONTRIBUTOR, container, DEPLOYER),
        "deployer-sas-delegator": (access.STORAGE_BLOB_DELEGATOR, account, DEPLOYER),
        "deployer-secrets-officer": (access.KEY_VAULT_SECRETS_OFFICER, vault, DEPLOYER),
    }
    actual = _assignments(default)
    assert set(actual) == set(expected)
    for name, (role, scope, principal) in expected.items():
        inputs = actual[name]
        assert inputs["roleDefinitionId"] == (
            f"/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Authorization/roleDefinitions/{role}"), name
        assert inputs["scope"] == scope, name
        assert inputs["principalId"] == principal, name
        assert inputs["roleAssignmentName"] == access.assignment_name(scope, principal, role), name
    assert token_secret.endswith("/secrets/partner-center-refresh-token")
    assert container.endswith("/containers/app-package")


def test_role_assignment_names_are_deterministic_and_distinct(default: RecordingMocks) -> None:
    again = deploy()
    first = {n: i["roleAssignmentName"] for n, i in _assignments(default).items()}
    second = {n: i["roleAssignmentName"] for n, i in _assignments(again).items()}
    assert first == second
    assert len(set(first.values())) == len(first)


def test_without_customer_secret_writes_the_app_writes_only_the_refresh_token() -> None:
    mocks = deploy({"writeCustomerSecrets": "false", "deployerSecretsOfficer": "false"})
    officer = [i for i in _assignments(mocks).values()
               if i["roleDefinitionId"].endswith(access.KEY_VAULT_SECRETS_OFFICER)]
    assert [i["scope"] for i in officer] == [mocks.one("azure-native:keyvault:Secret").id]


def test_outputs_webhook_url_and_code_deployment_hash(default: RecordingMocks) -> None:
    deployment: Registered = default.one("pulumi-python:dynamic:Resource")
    app_name = default.one("azure-native:web:WebApp").inputs["name"]
    assert deployment.inputs["app_name"] == app_name
    assert len(deployment.inputs["content_hash"]) == 64
    assert deployment.inputs["container_url"].endswith("/app-package")
    urls: list[str] = []
    deploy(after=lambda stack: stack.function_app.webhook_url.apply(urls.append))
    assert urls == [f"https://{app_name}.azurewebsites.net/api/webhooks/partner-center"]


def test_detection_has_its_queue_tables_and_settings() -> None:
    from shared.names import DETECT_QUEUE, DETECTION_TABLE, WATCHLIST_TABLE

    mocks = deploy({"detectSchedule": "0 */10 * * * *", "detectConcurrency": "4", "tableNamePrefix": "fraud"})
    queues = {r.inputs["queueName"] for r in mocks.of_type("azure-native:storage:Queue")}
    assert {DETECT_QUEUE, poison_queue(DETECT_QUEUE)} <= queues
    tables = {r.inputs["tableName"] for r in mocks.of_type("azure-native:storage:Table")}
    assert {f"fraud{WATCHLIST_TABLE}", f"fraud{DETECTION_TABLE}"} <= tables
    settings = _settings(mocks)
    assert (settings["DETECT_SCHEDULE"], settings["DETECT_CONCURRENCY"]) == ("0 */10 * * * *", "4")
    assert (settings["DETECT_ENABLED"], settings["DETECT_WATCHLIST_REFRESH_MINUTES"]) == ("true", "60")
    with pytest.raises(ConfigError, match="detectConcurrency"):
        deploy({"detectConcurrency": "1000"})
