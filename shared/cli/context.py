"""What CLI commands share: settings (the same environment and local.settings.json as the app)
and the stores built from them, created once per process."""

from __future__ import annotations

import functools

from shared.cli import CommandFailed
from shared.settings import Settings, SettingsError, get_settings
from shared.storage.tables import TableStore


def settings() -> Settings:
    try:
        return get_settings()
    except SettingsError as exc:
        raise CommandFailed(f"{exc} (set it in the environment or local.settings.json)") from None


@functools.cache
def store() -> TableStore:
    return TableStore(settings())
