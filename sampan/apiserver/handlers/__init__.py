"""HTTP handlers for resource requests, one module per kind of verb."""
