"""Custom resources: additionalPrinterColumns evaluated with JSONPath."""

from datetime import datetime, timezone

import pytest

from sampan.api.tables import build_table, has_printer
from sampan.api.tables.jsonpath import JSONPathError, compile_path, find

NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=timezone.utc)

COLUMNS = [
    {"name": "Spec", "type": "string", "jsonPath": ".spec.cronSpec"},
    {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas", "description": "Desired replicas"},
    {"name": "Ratio", "type": "number", "jsonPath": ".status.ratio"},
    {"name": "Paused", "type": "boolean", "jsonPath": ".spec.paused"},
    {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
    {"name": "Zone", "type": "string", "jsonPath": ".metadata.labels.topology\\.kubernetes\\.io/zone",
     "priority": 1},
    {"name": "First Port", "type": "integer", "jsonPath": ".spec.ports[0].port", "priority": 1},
    {"name": "Hosts", "type": "string", "jsonPath": ".spec.ports[*].host", "priority": 1},
    {"name": "Selector", "type": "string", "jsonPath": ".spec.selector", "priority": 1},
    {"name": "Last Run", "type": "date", "jsonPath": ".status.lastRun"},
    {"name": "Missing", "type": "string", "jsonPath": ".status.nothing.here"},
]

CRONTAB = {
    "apiVersion": "stable.example.com/v1", "kind": "CronTab",
    "metadata": {"name": "my-cron", "namespace": "default", "creationTimestamp": "2025-02-28T12:00:00Z",
                 "labels": {"topology.kubernetes.io/zone": "eu-1a"}},
    "spec": {"cronSpec": "* * * * */5", "replicas": 3, "paused": False, "selector": {"b": 2, "a": "x"},
             "ports": [{"port": 8080, "host": "a.local"}, {"port": 9090, "host": "b.local"}]},
    "status": {"ratio": 1, "lastRun": "2025-03-01T11:30:00Z",
               "conditions": [{"type": "Synced", "status": "False"}, {"type": "Ready", "status": "True"}]},
}


def test_crd_columns_and_cells() -> None:
    table = build_table("stable.example.com", "crontabs", [CRONTAB], columns=COLUMNS, now=NOW)
    defs = table["columnDefinitions"]
    assert [(d["name"], d["type"], d["priority"]) for d in defs] == [
        ("Name", "string", 0), ("Spec", "string", 0), ("Replicas", "integer", 0), ("Ratio", "number", 0),
        ("Paused", "boolean", 0), ("Ready", "string", 0), ("Zone", "string", 1), ("First Port", "integer", 1),
        ("Hosts", "string", 1), ("Selector", "string", 1), ("Last Run", "date", 0), ("Missing", "string", 0)]
    assert defs[0]["format"] == "name"
    assert defs[1]["description"] == "Custom resource definition column (in JSONPath format): .spec.cronSpec"
    assert defs[2]["description"] == "Desired replicas"
    assert table["rows"][0]["cells"] == [
        "my-cron", "* * * * */5", 3, 1.0, False, "True", "eu-1a", 8080, "a.local", '{"a":"x","b":2}', "30m", None]
    assert table["rows"][0]["object"]["kind"] == "PartialObjectMetadata"


def test_crd_without_columns_gets_age() -> None:
    for columns in ([], None):
        table = build_table("stable.example.com", "crontabs", [CRONTAB], columns=columns, now=NOW)
        assert [(d["name"], d["type"]) for d in table["columnDefinitions"]] == [("Name", "string"), ("Age", "date")]
        assert table["rows"][0]["cells"] == ["my-cron", "24h"]
    assert not has_printer("stable.example.com", "crontabs")


def test_type_mismatches_give_empty_cells() -> None:
    columns = [{"name": "N", "type": "integer", "jsonPath": ".spec.cronSpec"},
               {"name": "B", "type": "boolean", "jsonPath": ".spec.replicas"},
               {"name": "D", "type": "date", "jsonPath": ".spec.cronSpec"},
               {"name": "S", "type": "string", "jsonPath": ".spec.replicas"},
               {"name": "Bad", "type": "string", "jsonPath": ".spec[?("}]
    cells = build_table("stable.example.com", "crontabs", [CRONTAB], columns=columns, now=NOW)["rows"][0]["cells"]
    assert cells == ["my-cron", None, None, "<invalid>", "3", None]


@pytest.mark.parametrize(("path", "expected"), [
    (".spec.replicas", [3]),
    ("{.spec.replicas}", [3]),
    (".spec.ports[1].port", [9090]),
    (".spec.ports[-1].host", ["b.local"]),
    (".spec.ports[*].port", [8080, 9090]),
    (".spec.ports[0:1].port", [8080]),
    (".spec['cronSpec']", ["* * * * */5"]),
    (".metadata.labels.topology\\.kubernetes\\.io/zone", ["eu-1a"]),
    ('.status.conditions[?(@.type!="Ready")].type', ["Synced"]),
    (".spec.ports[?(@.port>8500)].host", ["b.local"]),
    ("..host", ["a.local", "b.local"]),
    (".spec.nope", []),
])
def test_jsonpath(path: str, expected: list) -> None:
    assert find(path, CRONTAB) == expected


def test_jsonpath_rejects_garbage() -> None:
    with pytest.raises(JSONPathError):
        compile_path(".a[")
