"""Helpers several controllers share (pods from templates, readiness, hashing, revisions...)."""
