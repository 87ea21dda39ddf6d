"""Server-side apply and managedFields, with the semantics of a real kube-apiserver.

- :func:`server_side_apply` applies a configuration for a field manager;
- :func:`update_managed_fields` records ordinary creates, updates and patches;
- :func:`fields_v1` / :func:`parse_fields_v1` convert field sets to and from the
  FieldsV1 JSON stored in ``metadata.managedFields``.
"""

from sampan.api.apply.fieldpath import FieldSet, Path, fields_v1, parse_fields_v1, path_string
from sampan.api.apply.managed import ApplyConflict, server_side_apply, update_managed_fields
from sampan.api.apply.merge import InvalidApply

__all__ = [
    "ApplyConflict",
    "FieldSet",
    "InvalidApply",
    "Path",
    "fields_v1",
    "parse_fields_v1",
    "path_string",
    "server_side_apply",
    "update_managed_fields",
]
