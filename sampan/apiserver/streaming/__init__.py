"""Streaming subresources: exec, attach and port-forward over WebSocket and SPDY/3.1.

The handlers speak the client protocols; a `StreamBackend` does the work on the node.
"""

from sampan.apiserver.streaming.backend import LocalProcessBackend, StreamBackend, StreamError, StreamIO
from sampan.apiserver.streaming.handlers import handle_attach, handle_exec, handle_portforward

__all__ = [
    "LocalProcessBackend",
    "StreamBackend",
    "StreamError",
    "StreamIO",
    "handle_attach",
    "handle_exec",
    "handle_portforward",
]
