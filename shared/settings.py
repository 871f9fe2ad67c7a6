"""Typed settings: the only module that reads the environment.

Every setting is declared once in ``SPECS`` with its meaning, default and an example.
``local.settings.sample.json``, the table in docs/settings.md and the infrastructure's app settings are
checked against this list by tests, so a setting cannot be added in one place and forgotten in
another. Environment variables override ``local.settings.json`` (the same precedence the
Functions host uses when it loads that file into the environment).
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlparse

from shared.errors import FraudResponderError

APP_ROOT = Path(__file__).resolve().parent.parent
LOCAL_SETTINGS_FILE = "local.settings.json"


class SettingsError(FraudResponderError, ValueError):
    """A setting is missing or malformed; the message names it and shows a good value."""

    error_code = "misconfigured"


# ---------------------------------------------------------------------------------------------
# Parsers: each takes the raw string and returns the typed value or raises ValueError with a
# short reason. The caller adds the setting name and the example.


def _text(raw: str) -> str:
    return raw.strip()


def _url(raw: str) -> str:
    value = raw.strip().rstrip("/")
    parsed = urlparse(value)
    if parsed.scheme not in ("https", "http") or not parsed.netloc:
        raise ValueError("expected an absolute http(s) URL")
    return value


def _optional_url(raw: str) -> str:
    return _url(raw) if raw.strip() else ""


def _https_url_or_empty(raw: str) -> str:
    value = _optional_url(raw)
    if value and not value.startswith("https://"):
        raise ValueError("expected an https:// URL")
    return value


def _int_range(low: int, high: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw.strip())
        except ValueError:
            raise ValueError("expected a whole number") from None
        if not low <= value <= high:
            raise ValueError(f"expected a number from {low} to {high}")
        return value

    return parse


def _bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("expected true or false")


def _csv(raw: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def _choices(*allowed: str) -> Callable[[str], tuple[str, ...]]:
    def parse(raw: str) -> tuple[str, ...]:
        values = tuple(v.lower() for v in _csv(raw))
        unknown = [v for v in values if v not in allowed]
        if unknown:
            raise ValueError(f"unknown value {unknown[0]!r}; choose from {', '.join(allowed)}")
        return values

    return parse


def _source_choices(raw: str) -> tuple[str, ...]:
    """Registered alert sources that are polled (``shared.sources``; not the detectors), read when
    the setting is parsed."""
    from shared.sources import polled_names

    return _choices(*polled_names())(raw)


def _emails(raw: str) -> tuple[str, ...]:
    values = _csv(raw)
    for value in values:
        if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", value):
            raise ValueError(f"{value!r} is not an e-mail address")
    return values


_NCRONTAB_FIELD = re.compile(r"^(\*|\d+(-\d+)?)(/\d+)?(,(\*|\d+(-\d+)?)(/\d+)?)*$|^[A-Za-z]{3}(-[A-Za-z]{3})?$")


def _ncrontab(raw: str) -> str:
    value = raw.strip()
    fields = value.split()
    if len(fields) != 6 or not all(_NCRONTAB_FIELD.match(f) for f in fields):
        raise ValueError("expected a six-field NCRONTAB expression (second minute hour day month weekday)")
    return value


def _percentages(raw: str) -> tuple[float, ...]:
    try:
        values = tuple(sorted({float(v) for v in _csv(raw)}))
    except ValueError:
        raise ValueError("expected percentages separated by commas, such as 80,100,150") from None
    if not values or any(not 1 <= v <= 1000 for v in values):
        raise ValueError("expected one to ten percentages from 1 to 1000, such as 80,100,150")
    return values[:10]


def _currency(raw: str) -> str:
    value = raw.strip().upper()
    if not re.fullmatch(r"[A-Z]{3}", value):
        raise ValueError("expected a three-letter ISO 4217 currency code such as USD or EUR")
    return value


def _path(raw: str) -> Path:
    path = Path(raw.strip())
    return path if path.is_absolute() else APP_ROOT / path


def _optional_path(raw: str) -> Path | None:
    return _path(raw) if raw.strip() else None


def _guid_or_empty(raw: str) -> str:
    value = raw.strip()
    if value and not re.fullmatch(r"[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}", value):
        raise ValueError("expected a GUID")
    return value.lower()


def _secret_name(raw: str) -> str:
    value = raw.strip()
    if not re.fullmatch(r"[0-9a-zA-Z-]{1,127}", value):
        raise ValueError("expected a Key Vault secret name (letters, digits and dashes)")
    return value


def _table_prefix(raw: str) -> str:
    value = raw.strip()
    if value and not re.fullmatch(r"[A-Za-z][A-Za-z0-9]{0,20}", value):
        raise ValueError("expected letters and digits, starting with a letter, at most 21")
    return value


def _log_format(raw: str) -> str:
    value = raw.strip().lower()
    if value not in ("text", "json"):
        raise ValueError("expected text or json")
    return value


def _log_level(raw: str) -> str:
    value = raw.strip().upper()
    if value not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ValueError("expected DEBUG, INFO, WARNING or ERROR")
    return value


@dataclass(frozen=True)
class SettingSpec:
    """One setting: its environment name, meaning, default (None = required) and an example."""

    name: str
    attr: str
    description: str
    default: str | None
    example: str
    parse: Callable[[str], Any] = _text
    secret: bool = False
    deploy: bool = True
    """False for settings that only make sense locally (sandbox CA, dev host port)."""


SPECS: tuple[SettingSpec, ...] = (
    # --- Microsoft endpoints (real ones by default; `make run` points them at sandbox/) ------
    SettingSpec("PARTNER_CENTER_URL", "partner_center_url", "Partner Center API base URL.",
                "https://api.partnercenter.microsoft.com", "https://api.partnercenter.microsoft.com", _url),
    SettingSpec("GRAPH_URL", "graph_url", "Microsoft Graph base URL.",
                "https://graph.microsoft.com", "https://graph.microsoft.com", _url),
    SettingSpec("ARM_URL", "arm_url", "Azure Resource Manager base URL.",
                "https://management.azure.com", "https://management.azure.com", _url),
    SettingSpec("ENTRA_AUTHORITY_HOST", "entra_authority_host",
                "Microsoft Entra ID authority host used by MSAL and azure-identity.",
                "https://login.microsoftonline.com", "https://login.microsoftonline.com", _url),
    SettingSpec("KEY_VAULT_URL", "key_vault_url",
                "Key Vault holding the refresh token and client secrets; empty = not configured.",
                "", "https://contoso-fraud-kv.vault.azure.net", _https_url_or_empty),
    SettingSpec("TRUSTED_CA_BUNDLE", "trusted_ca_bundle",
                "Extra PEM CA file trusted for outbound HTTPS (the sandbox CA locally); empty = system trust only.",
                "", ".run/sandbox/ca.pem", _optional_path, deploy=False),
    # --- Identity ------------------------------------------------------------------------
    SettingSpec("PARTNER_TENANT_ID", "partner_tenant_id", "The CSP partner's Entra tenant id.",
                "", "72f988bf-86f1-41af-91ab-2d7cd011db47", _guid_or_empty),
    SettingSpec("PARTNER_APP_CLIENT_ID", "partner_app_client_id",
                "Client id of the Secure Application Model (App+User) app registration.",
                "", "0b8f6a0e-3c1c-4a43-9a4e-6f1d2b1b9e11", _guid_or_empty),
    SettingSpec("PARTNER_APP_SECRET_NAME", "partner_app_secret_name",
                "Key Vault secret holding the SAM app's client secret.",
                "partner-app-client-secret", "partner-app-client-secret", _secret_name),
    SettingSpec("REFRESH_TOKEN_SECRET_NAME", "refresh_token_secret_name",
                "Key Vault secret holding the SAM refresh token (rolled on every redemption).",
                "partner-center-refresh-token", "partner-center-refresh-token", _secret_name),
    SettingSpec("GRAPH_APP_CLIENT_ID", "graph_app_client_id",
                "Client id of the app-only registration that reads Graph partner security alerts.",
                "", "5d2c1b4e-8e0a-4b57-9c0c-3a1f0e8d7c22", _guid_or_empty),
    SettingSpec("GRAPH_APP_SECRET_NAME", "graph_app_secret_name",
                "Key Vault secret holding the Graph alerts app's client secret.",
                "graph-app-client-secret", "graph-app-client-secret", _secret_name),
    SettingSpec("ADMIN_API_CLIENT_ID", "admin_api_client_id",
                "Client id of the app registration whose access tokens (with the app roles FraudResponder.Read / "
                "FraudResponder.Decide) open the admin API; empty = the admin API refuses every call.",
                "", "5a1f0c9e-2b7d-4e8a-9c3f-1d2e3f4a5b6c", _guid_or_empty),
    SettingSpec("AZURE_TENANT_ID", "azure_tenant_id",
                "Tenant of the app's own local identity (with AZURE_CLIENT_ID and AZURE_CLIENT_SECRET); "
                "empty = DefaultAzureCredential (managed identity in Azure).",
                "", "11111111-1111-4111-8111-111111111111", _guid_or_empty, deploy=False),
    SettingSpec("AZURE_CLIENT_ID", "azure_client_id",
                "Client id of the app's own local identity, used for Key Vault when AZURE_CLIENT_SECRET is set.",
                "", "44444444-4444-4444-8444-444444444444", _guid_or_empty, deploy=False),
    SettingSpec("AZURE_CLIENT_SECRET", "azure_client_secret",
                "Client secret of the app's own local identity (the sandbox prints one); never set in Azure.",
                "", "<client secret>", _text, secret=True, deploy=False),
    # --- Intake -----------------------------------------------------------------------------
    SettingSpec("ALERT_SOURCES", "alert_sources",
                "Alert sources to poll, comma separated: partner_center, graph, budget (spending budgets).",
                "partner_center", "partner_center,graph", _source_choices),
    SettingSpec("POLL_SCHEDULE", "poll_schedule", "NCRONTAB schedule of the poll_alerts timer.",
                "0 */5 * * * *", "0 */5 * * * *", _ncrontab),
    SettingSpec("WEBHOOK_CERT_HOSTS", "webhook_cert_hosts",
                "Hosts the webhook signing certificate may be downloaded from, comma separated.",
                "3psostorageacct.blob.core.windows.net", "3psostorageacct.blob.core.windows.net", _csv),
    SettingSpec("WEBHOOK_ALLOW_PRIVATE_CERT_HOSTS", "webhook_allow_private_cert_hosts",
                "Certificate hosts allowed to resolve to loopback or private addresses (the sandbox only).",
                "", "localhost", _csv, deploy=False),
    SettingSpec("WEBHOOK_TRUSTED_ROOTS", "webhook_trusted_roots",
                "PEM file of root CAs the webhook signing certificate must chain to.",
                "shared/data/microsoft_roots.pem", "shared/data/microsoft_roots.pem", _path),
    SettingSpec("WEBHOOK_MAX_BODY_BYTES", "webhook_max_body_bytes",
                "Largest webhook body accepted, in bytes; larger gets 413.",
                "65536", "65536", _int_range(1024, 4 * 1024 * 1024)),
    # --- Response ---------------------------------------------------------------------------
    SettingSpec("POLICY_PATH", "policy_path", "TOML response policy.",
                "policy/default.toml", "policy/default.toml", _path),
    SettingSpec("NOTIFY_SENDER", "notify_sender",
                "Mailbox (UPN) in the partner tenant that sends notification e-mail.",
                "", "fraud-responder@contoso.com", _text),
    SettingSpec("SECURITY_CONTACTS", "security_contacts",
                "Partner security contacts notified of every alert, comma separated.",
                "", "soc@contoso.com,oncall@contoso.com", _emails),
    SettingSpec("NOTIFY_WEBHOOK_SECRET_NAME", "notify_webhook_secret_name",
                "Key Vault secret holding a Teams/Slack incoming-webhook URL; empty = e-mail only.",
                "", "notify-webhook-url", lambda raw: _secret_name(raw) if raw.strip() else ""),
    SettingSpec("ALLOW_AUTOMATIC_CANCELLATION", "allow_automatic_cancellation",
                "Let policy cancel Azure subscriptions without an operator's approval.",
                "false", "false", _bool),
    SettingSpec("DIGEST_SCHEDULE", "digest_schedule", "NCRONTAB schedule of the daily digest.",
                "0 0 7 * * *", "0 0 7 * * *", _ncrontab),
    SettingSpec("TOKEN_WARN_DAYS", "token_warn_days",
                "Warn (health, token status, a daily e-mail) when the SAM refresh token would expire unused "
                "in fewer than this many days.",
                "14", "14", _int_range(1, 89)),
    SettingSpec("APPROVAL_EXPIRY_HOURS", "approval_expiry_hours",
                "Hours an action may wait for approval before it expires (recorded, and the security contacts are "
                "notified again with the commands that approve it); 0 = never.",
                "72", "72", _int_range(0, 2160)),
    # --- Runtime ----------------------------------------------------------------------------
    SettingSpec("TABLE_NAME_PREFIX", "table_name_prefix",
                "Prefix for table names, so several deployments can share one account.",
                "", "fraud", _table_prefix),
    SettingSpec("LOG_LEVEL", "log_level", "Python log level.", "INFO", "INFO",
                _log_level),
    SettingSpec("LOG_FORMAT", "log_format",
                "Format of local log output: text, or json (one object per line with alert_id, customer, action).",
                "text", "json", _log_format, deploy=False),
    # --- Response speed (issue 16) -------------------------------------------------------------
    SettingSpec("RESPOND_CONCURRENCY", "respond_concurrency",
                "Alerts of one batch respond message answered at once (a sync transaction's alerts share a "
                "message); 1 = one after another.",
                "8", "8", _int_range(1, 32)),
    SettingSpec("RESPOND_ACTION_CONCURRENCY", "respond_action_concurrency",
                "Independent work of one alert run at once: the targets of one action (e.g. the VMs "
                "stop_resources checks and stops) and the investigation beside the containment that does "
                "not read it; 1 = one after another.",
                "4", "4", _int_range(1, 16)),
    SettingSpec("RESPOND_INLINE_MAX", "respond_inline_max",
                "Alerts a webhook's sync answers itself, without the respond queue's hop (the rest go to the "
                "queue at once); 0 = every answer goes through the queue.",
                "20", "20", _int_range(0, 100)),
    # --- Spend (shared/spend): the billing export and the daily series ---------------------------
    SettingSpec("SPEND_REFRESH_HOURS", "spend_refresh_hours",
                "A detection run refreshes the daily spend series from Graph's billing export when the last good "
                "refresh is older than this (Microsoft rates usage about once a day).",
                "6", "6", _int_range(1, 168)),
    SettingSpec("BUDGET_THRESHOLDS", "budget_thresholds",
                "Percentages of a customer's monthly spending budget that raise an alert (each once a month).",
                "80,100,150", "80,100,150", _percentages),
    SettingSpec("SPEND_CURRENCY", "spend_currency",
                "The partner's billing currency asked of the billing export (ISO 4217).",
                "USD", "USD", _currency),
    # --- Independent detection (shared/detection; thresholds live in the policy's [detection]) --
    SettingSpec("DETECT_ENABLED", "detect_enabled",
                "Run the detectors on DETECT_SCHEDULE (false: the timer does nothing; `detect --once` still runs).",
                "true", "true", _bool),
    SettingSpec("DETECT_SCHEDULE", "detect_schedule", "NCRONTAB schedule of the detect timer (the fan-out).",
                "0 */5 * * * *", "0 */5 * * * *", _ncrontab),
    SettingSpec("DETECT_CONCURRENCY", "detect_concurrency",
                "Subscriptions judged at once per instance (each reads ARM; ARM throttling is honoured as well).",
                "8", "8", _int_range(1, 64)),
    SettingSpec("DETECT_GROUP_SIZE", "detect_group_size",
                "Subscriptions per alerts-detect job (the host spreads jobs over instances).",
                "10", "10", _int_range(1, 100)),
    SettingSpec("DETECT_WATCHLIST_REFRESH_MINUTES", "detect_watchlist_refresh_minutes",
                "How often the watched subscriptions are listed again from Partner Center (cached in between; a "
                "failed refresh keeps the cache).",
                "60", "60", _int_range(1, 1440)),
    SettingSpec("DETECT_OVERLAP_MINUTES", "detect_overlap_minutes",
                "Each run reads the activity log from this long before the last checkpoint (entries show up late); "
                "entries already counted are dropped.",
                "30", "30", _int_range(0, 240)),
)


DEVELOPMENT_ACCOUNT: Final = "devstoreaccount1"
DEVELOPMENT_ACCOUNT_KEY: Final = ("Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/"
                                  "K1SZFPTOtr/KBHBeksoGMGw==")
"""Azurite's documented, public account and key (not a secret)."""


@dataclass(frozen=True)
class StorageConnection:
    """How to reach Storage: a connection string, or identity-based service URIs.

    Mirrors the Functions host: ``AzureWebJobsStorage`` holds a connection string, or
    ``AzureWebJobsStorage__accountName`` (optionally ``__credential`` / ``__clientId``, or explicit
    ``__tableServiceUri`` / ``__queueServiceUri`` / ``__blobServiceUri``) selects an identity-based
    connection through DefaultAzureCredential.
    """

    connection_string: str = ""
    table_service_uri: str = ""
    queue_service_uri: str = ""
    blob_service_uri: str = ""
    client_id: str = ""

    @property
    def uses_identity(self) -> bool:
        return not self.connection_string

    @property
    def is_development_storage(self) -> bool:
        """Azurite (or the old emulator): its well-known account, whose key everyone knows."""
        if "UseDevelopmentStorage=true" in self.connection_string:
            return True
        parts = dict(p.split("=", 1) for p in self.connection_string.split(";") if "=" in p)
        return parts.get("AccountName") == DEVELOPMENT_ACCOUNT and parts.get("AccountKey") == DEVELOPMENT_ACCOUNT_KEY

    def describe(self) -> str:
        """A log-safe description: never the account key."""
        if self.connection_string:
            if "UseDevelopmentStorage=true" in self.connection_string:
                return "connection string (development storage)"
            parts = dict(p.split("=", 1) for p in self.connection_string.split(";") if "=" in p)
            return f"connection string (account {parts.get('AccountName', '?')})"
        return f"identity-based ({self.table_service_uri})"


@dataclass(frozen=True)
class Settings:
    partner_center_url: str
    graph_url: str
    arm_url: str
    entra_authority_host: str
    key_vault_url: str
    trusted_ca_bundle: Path | None
    partner_tenant_id: str
    partner_app_client_id: str
    partner_app_secret_name: str
    refresh_token_secret_name: str
    graph_app_client_id: str
    graph_app_secret_name: str
    admin_api_client_id: str
    azure_tenant_id: str
    azure_client_id: str
    azure_client_secret: str = field(repr=False)
    alert_sources: tuple[str, ...]
    poll_schedule: str
    webhook_cert_hosts: tuple[str, ...]
    webhook_allow_private_cert_hosts: tuple[str, ...]
    webhook_trusted_roots: Path
    webhook_max_body_bytes: int
    policy_path: Path
    notify_sender: str
    security_contacts: tuple[str, ...]
    notify_webhook_secret_name: str
    allow_automatic_cancellation: bool
    digest_schedule: str
    token_warn_days: int
    approval_expiry_hours: int
    table_name_prefix: str
    log_level: str
    log_format: str
    storage: StorageConnection = field(default_factory=StorageConnection)
    respond_concurrency: int = 8
    respond_action_concurrency: int = 4
    respond_inline_max: int = 20
    spend_refresh_hours: int = 6
    spend_currency: str = "USD"
    budget_thresholds: tuple[float, ...] = (80.0, 100.0, 150.0)
    detect_enabled: bool = True
    detect_schedule: str = "0 */5 * * * *"
    detect_concurrency: int = 8
    detect_group_size: int = 10
    detect_watchlist_refresh_minutes: int = 60
    detect_overlap_minutes: int = 30

    def tls_verify(self) -> str | bool:
        """What to pass as ``verify`` to httpx / requests / MSAL: the extra CA bundle or True."""
        return str(self.trusted_ca_bundle) if self.trusted_ca_bundle else True


STORAGE_SETTING = "AzureWebJobsStorage"


def _storage_connection(values: Mapping[str, str]) -> StorageConnection:
    conn = values.get(STORAGE_SETTING, "").strip()
    if conn:
        if "UseDevelopmentStorage=true" not in conn and "AccountName=" not in conn and "Endpoint=" not in conn:
            raise SettingsError(
                f"{STORAGE_SETTING} is not a storage connection string; "
                "example: UseDevelopmentStorage=true (Azurite) or "
                "DefaultEndpointsProtocol=https;AccountName=contosofraud;AccountKey=...;EndpointSuffix=core.windows.net"
            )
        return StorageConnection(connection_string=conn)
    prefix = STORAGE_SETTING + "__"
    account = values.get(prefix + "accountName", "").strip()
    uris = {kind: values.get(f"{prefix}{kind}ServiceUri", "").strip() for kind in ("table", "queue", "blob")}
    if not account and not all(uris.values()):
        raise SettingsError(
            f"{STORAGE_SETTING} is not set; example: {STORAGE_SETTING}=UseDevelopmentStorage=true for Azurite, "
            f"or {STORAGE_SETTING}__accountName=contosofraud for an identity-based connection"
        )
    uris = {kind: uri or f"https://{account}.{kind}.core.windows.net" for kind, uri in uris.items()}
    client_id = values.get(prefix + "clientId", "").strip()
    if values.get(prefix + "credential", "").strip().lower() not in ("", "managedidentity"):
        raise SettingsError(f"{prefix}credential must be 'managedidentity' or unset; example: managedidentity")
    return StorageConnection(
        table_service_uri=uris["table"], queue_service_uri=uris["queue"], blob_service_uri=uris["blob"],
        client_id=client_id,
    )


def read_local_settings(path: Path) -> dict[str, str]:
    """Values from a local.settings.json file, or {} when there is none."""
    if not path.is_file():
        return {}
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise SettingsError(f"{path.name} is not valid JSON ({exc}); copy local.settings.sample.json") from None
    values = document.get("Values", {}) if isinstance(document, dict) else {}
    if not isinstance(values, dict):
        raise SettingsError(f"{path.name}: 'Values' must be an object; see local.settings.sample.json")
    return {str(k): str(v) for k, v in values.items()}


LOCAL_SETTINGS_ENV = "FRAUD_RESPONDER_LOCAL_SETTINGS"
_DISCOVERED: dict[str, Path] = {}
"""The settings file a process found for itself (the CLI: a running local stack's), see use_local_settings."""


def local_settings_named(environ: Mapping[str, str] | None = None) -> bool:
    """Whether FRAUD_RESPONDER_LOCAL_SETTINGS names the settings file (then nothing is looked for)."""
    return bool((os.environ if environ is None else environ).get(LOCAL_SETTINGS_ENV, ""))


def local_settings_path(environ: Mapping[str, str] | None = None) -> Path:
    """The local.settings.json read: FRAUD_RESPONDER_LOCAL_SETTINGS, else one found by use_local_settings,
    else the one in the app's root."""
    named = (os.environ if environ is None else environ).get(LOCAL_SETTINGS_ENV, "")
    return Path(named) if named else _DISCOVERED.get("path", APP_ROOT / LOCAL_SETTINGS_FILE)


def use_local_settings(path: Path) -> None:
    """Read ``path`` when FRAUD_RESPONDER_LOCAL_SETTINGS is unset (the CLI found a running stack's settings)."""
    _DISCOVERED["path"] = path
    reset_settings_cache()


def merged_values(environ: Mapping[str, str] | None = None, local_settings: Path | None = None) -> dict[str, str]:
    """local.settings.json values overridden by the environment."""
    env = os.environ if environ is None else environ
    path = local_settings if local_settings is not None else local_settings_path(env)
    values = read_local_settings(path)
    values.update(env)
    return values


def load_settings(environ: Mapping[str, str] | None = None, local_settings: Path | None = None) -> Settings:
    """Read and validate every setting; raise SettingsError naming the first bad one."""
    values = merged_values(environ, local_settings)
    parsed: dict[str, Any] = {}
    for spec in SPECS:
        raw = values.get(spec.name)
        if raw is None:
            if spec.default is None:
                raise SettingsError(
                    f"{spec.name} is required ({spec.description}); example: {spec.name}={spec.example}"
                )
            raw = spec.default
        try:
            parsed[spec.attr] = spec.parse(raw)
        except ValueError as exc:
            shown = "<hidden>" if spec.secret else repr(raw)
            raise SettingsError(f"{spec.name}={shown} is invalid: {exc}; example: {spec.name}={spec.example}") from None
    parsed["storage"] = _storage_connection(values)
    return Settings(**parsed)


@functools.cache
def get_settings() -> Settings:
    """Settings for this process, loaded once (handlers call this on first use)."""
    return load_settings()


def reset_settings_cache() -> None:
    get_settings.cache_clear()


HOST_JSON_OVERRIDE_PREFIX = "AzureFunctionsJobHost__"


def host_json_override(path: str, environ: Mapping[str, str] | None = None) -> str | None:
    """The app setting that overrides a host.json value, as the Functions host allows.

    ``path`` is the host.json path with dots (``functionTimeout``, ``extensions.queues.batchSize``);
    the setting is ``AzureFunctionsJobHost__`` plus the path with ``__`` for the dots. None when unset.
    """
    source = os.environ if environ is None else environ
    value = source.get(HOST_JSON_OVERRIDE_PREFIX + path.replace(".", "__"), "").strip()
    return value or None
