"""Fixtures of the node agent tests (see agent_harness.py)."""

from tests.node.agent_harness import harness, server

__all__ = ["harness", "server"]
