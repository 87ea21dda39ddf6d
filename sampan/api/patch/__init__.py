"""The three PATCH bodies kube-apiserver accepts besides server-side apply.

- ``apply_json_patch``: RFC 6902 (``application/json-patch+json``)
- ``apply_merge_patch``: RFC 7386 (``application/merge-patch+json``)
- ``apply_strategic_merge_patch``: ``application/strategic-merge-patch+json``

All return a new document and never modify their arguments. Failures raise
``PatchError`` whose ``code`` is the HTTP status the apiserver would answer.
"""

from sampan.api.patch.common import PatchError, PatchTestFailed
from sampan.api.patch.jsonpatch import apply_json_patch
from sampan.api.patch.mergepatch import apply_merge_patch, merge_patch_value
from sampan.api.patch.strategic import apply_strategic_merge_patch

__all__ = [
    "PatchError",
    "PatchTestFailed",
    "apply_json_patch",
    "apply_merge_patch",
    "apply_strategic_merge_patch",
    "merge_patch_value",
]
