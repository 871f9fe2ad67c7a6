"""Session fixtures: a real Azurite on free loopback ports, settings pointing at it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from devhost.azurite import Azurite, start_azurite
from sandbox.core import Sandbox
from shared.settings import Settings, load_settings

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    """Azurite in memory, telemetry off; started once per test session and stopped after."""
    instance = start_azurite()
    try:
        yield instance
    finally:
        instance.stop()


def settings_env(azurite: Azurite, **overrides: str) -> dict[str, str]:
    """An environment for load_settings(): Azurite storage, unique table prefix, no local file."""
    env = {
        "AzureWebJobsStorage": azurite.connection_string,
        "TABLE_NAME_PREFIX": "t" + uuid.uuid4().hex[:12],
    }
    env.update(overrides)
    return env


@pytest.fixture
def settings(azurite: Azurite) -> Settings:
    """Settings isolated per test: each test gets its own table-name prefix."""
    return load_settings(settings_env(azurite), local_settings=REPO_ROOT / "does-not-exist.json")


@pytest.fixture(scope="session")
def sandbox() -> Iterator[Sandbox]:
    """The sandbox stand-ins (default scenario) on free loopback ports; started once, stopped after."""
    from sandbox.testing import sandbox_fixture

    yield from sandbox_fixture()


@pytest.fixture
def fresh_sandbox(sandbox: Sandbox) -> Sandbox:
    """The session sandbox reset to its scenario (state, faults, request log) before this test."""
    from sandbox.testing import fresh

    return fresh(sandbox)
