"""Streaming subresources: exec, attach and port-forward over WebSocket and SPDY/3.1.

The handlers speak the client protocols; a `StreamBackend` does the work on the node.
"""

from typing import Any

from sampan.apiserver.streaming.backend import LocalProcessBackend, StreamBackend, StreamError, StreamIO


def __getattr__(name: str) -> Any:
    # The handlers (aiohttp.web, the API's negotiation) load on first use: a node agent process
    # imports only the backend.
    if name in ("handle_attach", "handle_exec", "handle_portforward"):
        from sampan.apiserver.streaming import handlers

        return getattr(handlers, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "LocalProcessBackend",
    "StreamBackend",
    "StreamError",
    "StreamIO",
    "handle_attach",
    "handle_exec",
    "handle_portforward",
]
