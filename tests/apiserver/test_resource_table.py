"""ResourceTable.groups(): remembered between requests, recomputed when resources change."""

from __future__ import annotations

from sampan.apiserver.resources import ResourceInfo, ResourceTable


def info(group: str, version: str, plural: str) -> ResourceInfo:
    return ResourceInfo(group, version, plural, plural[:-1], plural.title(), True)


def test_groups_follow_added_and_removed_resources() -> None:
    table = ResourceTable([info("apps", "v1", "deployments"), info("", "v1", "pods")])
    assert table.groups() == [("apps", ["v1"])]
    assert table.groups() is table.groups()  # asked per request: computed once

    table.add(info("example.com", "v1alpha1", "widgets"))
    table.add(info("example.com", "v1", "widgets"))
    assert ("example.com", ["v1", "v1alpha1"]) in table.groups()
    assert table.versions_of("example.com") == ["v1", "v1alpha1"]

    table.remove("example.com", "v1", "widgets")
    assert table.versions_of("example.com") == ["v1alpha1"]
    table.remove("example.com", "v1alpha1", "widgets")
    assert table.versions_of("example.com") == []
    assert table.groups() == [("apps", ["v1"])]
