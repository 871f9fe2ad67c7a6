"""Pytest helpers: start the sandbox for a test session and point Settings at it.

tests/conftest.py builds its ``sandbox`` (session) and ``fresh_sandbox`` (reset per test)
fixtures from these, so every test starts from the scenario's initial state.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from sandbox.core import Sandbox, start_sandbox
from shared.settings import Settings, load_settings

_NO_LOCAL_SETTINGS = Path(__file__).resolve().parent / "no-local-settings.json"


def sandbox_fixture(scenario: Path | dict[str, Any] | None = None) -> Iterator[Sandbox]:
    """Start the sandbox on free loopback ports, yield it, stop it (use as a generator fixture body)."""
    sandbox = start_sandbox(scenario)
    try:
        yield sandbox
    finally:
        sandbox.stop()


def fresh(sandbox: Sandbox) -> Sandbox:
    """Reset the sandbox to its scenario (services, faults, request log): POST /_sandbox/reset semantics."""
    sandbox.reset()
    return sandbox


def sandbox_env(sandbox: Sandbox, storage: str = "UseDevelopmentStorage=true", **overrides: str) -> dict[str, str]:
    """The environment the app gets from the sandbox (its app_settings) plus a storage connection."""
    env = {"AzureWebJobsStorage": storage}
    env.update(sandbox.app_settings())
    env.update(overrides)
    return env


def sandbox_settings(sandbox: Sandbox, storage: str = "UseDevelopmentStorage=true",
                     extra: Mapping[str, str] | None = None) -> Settings:
    """Settings pointing at the sandbox, ignoring any local.settings.json."""
    return load_settings(sandbox_env(sandbox, storage, **dict(extra or {})), local_settings=_NO_LOCAL_SETTINGS)
