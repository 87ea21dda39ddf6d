"""Fixtures of the node agent tests (see agent_harness.py)."""

from tests.node.agent_harness import client, harness, registry

__all__ = ["client", "harness", "registry"]
