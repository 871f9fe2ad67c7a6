"""Fixtures for the storage tests: a TableStore and a QueueSender on the session's Azurite."""

from __future__ import annotations

import uuid

import pytest

from shared.settings import Settings
from shared.storage.queues import QueueSender
from shared.storage.tables import TableStore


@pytest.fixture
def store(settings: Settings) -> TableStore:
    """A store whose tables carry this test's unique prefix."""
    return TableStore(settings)


@pytest.fixture
def sender(settings: Settings) -> QueueSender:
    return QueueSender(settings)


def unique_queue(label: str = "q") -> str:
    """Queue names are not prefixed, so each test uses its own."""
    return f"{label}-{uuid.uuid4().hex[:16]}"
