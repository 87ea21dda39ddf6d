"""Resolving a reference in a registry to one manifest for this node's platform, and its config."""

from __future__ import annotations

import json
from dataclasses import dataclass

from .refs import INDEX_TYPES, MANIFEST_TYPES, ImageError, Reference, check_digest, pick_platform
from .registry import RegistryClient


@dataclass
class Resolved:
    top_digest: str  # what the reference named: a manifest list/index or a manifest
    manifest: bytes
    config: bytes
    layers: list[dict]  # layer descriptors, bottom first
    diff_ids: list[str]


def _json(body: bytes, what: str = "manifest") -> dict:
    try:
        doc = json.loads(body)
    except ValueError as exc:
        raise ImageError(f"malformed {what}: {exc}") from None
    if not isinstance(doc, dict):
        raise ImageError(f"malformed {what}")
    return doc


async def resolve(client: RegistryClient, ref: Reference) -> Resolved:
    body, media_type, top_digest = await client.manifest(ref.reference)
    doc = _json(body)
    media_type = doc.get("mediaType") or media_type
    if media_type in INDEX_TYPES or (not media_type and "manifests" in doc):
        entry = pick_platform(doc.get("manifests") or [])
        body, media_type, _ = await client.manifest(check_digest(entry.get("digest")))
        doc = _json(body)
        media_type = doc.get("mediaType") or media_type
    if media_type not in MANIFEST_TYPES and not (not media_type and "config" in doc):
        raise ImageError(f"unsupported manifest type {media_type!r}")
    config = await client.blob_bytes(check_digest((doc.get("config") or {}).get("digest")))
    rootfs = _json(config, "image config").get("rootfs") or {}
    diff_ids = [check_digest(d) for d in rootfs.get("diff_ids") or []]
    layers = doc.get("layers") or []
    if not isinstance(layers, list) or len(layers) != len(diff_ids):
        raise ImageError(f"manifest has {len(layers)} layers but the config lists {len(diff_ids)}")
    for desc in layers:
        check_digest(desc.get("digest") if isinstance(desc, dict) else None)
    return Resolved(top_digest, body, config, layers, diff_ids)
