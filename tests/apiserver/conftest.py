"""An API server app on a MemoryStore, driven through aiohttp's test client."""

from __future__ import annotations

import json
from typing import Any, AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer

from sampan.apiserver.app import build_app
from sampan.registry.registry import Registry


# ``registry`` comes from tests/conftest.py; here ``client`` is the app's HTTP test client.
@pytest.fixture
async def client(registry: Registry) -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(build_app(registry), handler_cancellation=True)) as c:
        yield c


def deployment(name: str = "web", replicas: int = 1, **labels: str) -> dict[str, Any]:
    labels = labels or {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}},
        },
    }


def configmap(name: str, **labels: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": labels}, "data": {"a": "1"}}


async def call(
    client: TestClient, method: str, path: str, body: Any = None, ctype: str = "application/json", **headers: str
) -> tuple[int, Any]:
    data = body if isinstance(body, (bytes, str)) or body is None else json.dumps(body)
    if data is not None:
        headers.setdefault("Content-Type", ctype)
    resp = await client.request(method, path, data=data, headers=headers)
    text = await resp.text()
    try:
        return resp.status, json.loads(text)
    except ValueError:
        return resp.status, text
