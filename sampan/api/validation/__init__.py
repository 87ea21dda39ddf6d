"""Validation of API objects: structural (schema) and semantic (per kind), upstream-worded."""

from sampan.api.validation.builtin import is_namespaced, validate_builtin
from sampan.api.validation.field import invalid_status_message
from sampan.api.validation.structural import strict_decoding_message, validate_schema

__all__ = ["validate_schema", "validate_builtin", "is_namespaced", "invalid_status_message",
           "strict_decoding_message"]
