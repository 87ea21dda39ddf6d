"""Fixtures for every test package: ``registry`` (in-process, memory store) and ``client``
(a LocalClient on it). Packages that need something else override them."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from sampan.client.local import LocalClient
from sampan.registry.registry import Registry
from tests.harness import memory_registry


@pytest.fixture
async def registry() -> AsyncIterator[Registry]:
    async with memory_registry() as reg:
        yield reg


@pytest.fixture
def client(registry: Registry) -> LocalClient:
    return LocalClient(registry, field_manager="test")
