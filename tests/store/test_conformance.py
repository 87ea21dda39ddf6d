"""Runs the shared store suite against every backend (see conftest.py)."""

from .conformance import *  # noqa: F401,F403
