"""Stack configuration: read once, validated with the app's own parsers.

Every app setting with ``deploy=True`` in ``shared/settings.SPECS`` can be set in stack config
under its camelCase attribute name (``POLL_SCHEDULE`` -> ``pollSchedule``, ``SECURITY_CONTACTS``
-> ``securityContacts``); unset ones get the spec default. A bad value fails ``pulumi preview``
with the same message the app would give at start-up, instead of a broken deployment.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Final

import pulumi

from shared.settings import SPECS, SettingSpec

INFRA_PROVIDED: Final = frozenset({"KEY_VAULT_URL"})
"""App settings whose value the program computes (from the resources it creates)."""

# Operator secrets the program may put in Key Vault when given with `pulumi config set --secret`:
# config key -> the setting that names the Key Vault secret.
SECRET_INPUTS: Final = {
    "refreshToken": "REFRESH_TOKEN_SECRET_NAME",
    "partnerAppClientSecret": "PARTNER_APP_SECRET_NAME",
    "graphAppClientSecret": "GRAPH_APP_SECRET_NAME",
    "notifyWebhookUrl": "NOTIFY_WEBHOOK_SECRET_NAME",
}

_PREFIX_RE = re.compile(r"[a-z][a-z0-9]{1,9}")


class ConfigError(ValueError):
    """A stack config value is missing or malformed; the message names the key and an example."""


def config_key(spec: SettingSpec) -> str:
    """The stack config key for an app setting: its attribute name in camelCase."""
    head, *rest = spec.attr.split("_")
    return head + "".join(part.capitalize() for part in rest)


@dataclass(frozen=True)
class StackConfig:
    location: str
    name_prefix: str
    suffix: str
    """Short hash of project/stack: keeps globally unique names (storage, vault, app) stable."""
    maximum_instances: int = 40
    instance_memory_mb: int = 2048
    write_customer_secrets: bool = True
    deployer_secrets_officer: bool = True
    deploy_code: bool = True
    app_settings: dict[str, str] = field(default_factory=dict)
    secrets: dict[str, pulumi.Output[str]] = field(default_factory=dict)

    @property
    def storage_account_name(self) -> str:
        return f"{self.name_prefix}st{self.suffix}"[:24]

    @property
    def key_vault_name(self) -> str:
        return f"{self.name_prefix}-kv-{self.suffix}"[:24]

    @property
    def function_app_name(self) -> str:
        return f"{self.name_prefix}-func-{self.suffix}"

    @property
    def resource_group_name(self) -> str:
        return f"{self.name_prefix}-{self.suffix}-rg"


def _app_settings(cfg: pulumi.Config) -> dict[str, str]:
    values: dict[str, str] = {}
    for spec in SPECS:
        if not spec.deploy or spec.name in INFRA_PROVIDED:
            continue
        key = config_key(spec)
        raw = cfg.get(key)
        if raw is None:
            if spec.default is None:
                raise ConfigError(f"{key} is required ({spec.description}); "
                                  f"example: pulumi config set {key} '{spec.example}'")
            raw = spec.default
        try:
            spec.parse(raw)
        except ValueError as exc:
            raise ConfigError(f"{key}={raw!r} is invalid: {exc}; example: pulumi config set {key} '{spec.example}'") \
                from None
        values[spec.name] = raw.strip()
    return values


def _secrets(cfg: pulumi.Config, app_settings: dict[str, str]) -> dict[str, pulumi.Output[str]]:
    """Secret inputs given with --secret; a clear-text one is refused, never used."""
    found: dict[str, pulumi.Output[str]] = {}
    for key, name_setting in SECRET_INPUTS.items():
        if cfg.get(key) is None:
            continue
        full_key = cfg.full_key(key)
        if not (pulumi.runtime.is_config_secret(full_key) or full_key in pulumi.runtime.get_config_secret_keys_env()):
            raise ConfigError(f"{key} is stored in clear text in the stack config: remove it "
                              f"(pulumi config rm {key}) and set it again with pulumi config set --secret {key}")
        if not app_settings.get(name_setting):
            raise ConfigError(f"{key} is set but {name_setting} (the secret's name) is empty; "
                              f"example: pulumi config set {config_key_for(name_setting)} notify-webhook-url")
        found[key] = cfg.require_secret(key)
    return found


def config_key_for(setting_name: str) -> str:
    spec = next(s for s in SPECS if s.name == setting_name)
    return config_key(spec)


def read_config(cfg: pulumi.Config | None = None) -> StackConfig:
    """The stack's configuration, validated; raises ConfigError naming the first bad key."""
    cfg = cfg or pulumi.Config()
    prefix = cfg.get("namePrefix") or "fraud"
    if not _PREFIX_RE.fullmatch(prefix):
        raise ConfigError(f"namePrefix={prefix!r} must be 2-10 lowercase letters and digits starting with a letter; "
                          "example: pulumi config set namePrefix contoso")
    location = cfg.get("location") or pulumi.Config("azure-native").get("location")
    if not location:
        raise ConfigError("location is required; example: pulumi config set azure-native:location swedencentral")
    max_instances = cfg.get_int("maximumInstances") or 40
    if not 1 <= max_instances <= 1000:
        raise ConfigError("maximumInstances must be 1 to 1000 (Flex Consumption's limit); "
                          "example: pulumi config set maximumInstances 40")
    memory = cfg.get_int("instanceMemoryMb") or 2048
    if memory not in (512, 2048, 4096):
        raise ConfigError("instanceMemoryMb must be 512, 2048 or 4096; "
                          "example: pulumi config set instanceMemoryMb 2048")
    identity = f"{pulumi.get_organization()}/{pulumi.get_project()}/{pulumi.get_stack()}/{prefix}"
    settings = _app_settings(cfg)
    return StackConfig(
        location=location,
        name_prefix=prefix,
        suffix=hashlib.sha256(identity.encode()).hexdigest()[:8],
        maximum_instances=max_instances,
        instance_memory_mb=memory,
        write_customer_secrets=_bool(cfg, "writeCustomerSecrets", default=True),
        deployer_secrets_officer=_bool(cfg, "deployerSecretsOfficer", default=True),
        deploy_code=_bool(cfg, "deployCode", default=True),
        app_settings=settings,
        secrets=_secrets(cfg, settings),
    )


def _bool(cfg: pulumi.Config, key: str, *, default: bool) -> bool:
    value = cfg.get_bool(key)
    return default if value is None else value
