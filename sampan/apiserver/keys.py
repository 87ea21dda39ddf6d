"""Typed keys for what the application and each request carry."""

from __future__ import annotations

import asyncio

from aiohttp import web

from sampan.apiserver.metrics import Metrics
from sampan.registry.registry import Registry

REGISTRY = web.AppKey("registry", Registry)
AUTHENTICATOR = web.AppKey("authenticator", object)  # sampan.apiserver.authn.Authenticator or None
PKI = web.AppKey("pki", object)  # sampan.apiserver.pki.Pki or None
METRICS = web.AppKey("metrics", Metrics)
OPENAPI = web.AppKey("openapi", object)  # misc.OpenAPICache
# Set once start-up work (the `kubernetes` Service, ...) is done; /readyz fails until then.
READY = web.AppKey("ready", asyncio.Event)
# Runs exec/attach/port-forward for pods (sampan.apiserver.streaming.StreamBackend); None: no node agent.
STREAM_BACKEND = web.AppKey("stream_backend", object)

USER = web.RequestKey("user", object)  # the authenticated UserInfo
METRIC_LABELS = web.RequestKey("metric_labels", tuple)
