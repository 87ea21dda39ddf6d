"""The shipped OpenAPI definitions: a compact copy for validation, documentation on demand."""

from __future__ import annotations

import subprocess
import sys

from sampan.api import schemas

POD = "io.k8s.api.core.v1.Pod"
PRIORITY_CLASS = "io.k8s.api.scheduling.v1.PriorityClass"


def _texts(node, found):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "description" and isinstance(value, str):
                found.append(value)
            _texts(value, found)
    elif isinstance(node, list):
        for value in node:
            _texts(value, found)
    return found


def test_compact_definitions_drop_only_documentation():
    compact, full = schemas.definitions(), schemas.documented_definitions()
    assert compact.keys() == full.keys()
    assert _texts(compact, []) == []
    assert _texts(full[POD], [])
    # Structure and extensions are untouched.
    spec = schemas.resolve(compact[POD]["properties"]["spec"])
    containers = spec["properties"]["containers"]
    assert containers["x-kubernetes-patch-merge-key"] == "name"
    # A property that happens to be called "description" is a schema, not documentation.
    assert "description" in compact[PRIORITY_CLASS]["properties"]


def test_property_description():
    assert schemas.property_description(POD, "spec").startswith("Specification of the desired behavior")
    assert schemas.property_description(POD, "no-such-field") == ""
    assert schemas.property_description("no.such.Definition", "spec") is None


def test_loading_definitions_does_not_import_the_validator_package():
    code = ("import sys; from sampan.api import schemas; schemas.definitions(); "
            "print('kubernetes_validate' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
