from sampan.client.events import NORMAL, WARNING, EventRecorder
from tests.client.fake import FakeClient

POD = {
    "kind": "Pod",
    "apiVersion": "v1",
    "metadata": {"name": "web-1", "namespace": "prod", "uid": "u1", "resourceVersion": "7"},
}
NODE = {"kind": "Node", "apiVersion": "v1", "metadata": {"name": "n1", "uid": "u2"}}


async def test_first_event_is_created() -> None:
    fake = FakeClient()
    rec = EventRecorder(fake, "scheduler", host="h1")
    rec.event(POD, NORMAL, "Scheduled", "Successfully assigned prod/web-1 to n1")
    await rec.flush()
    [write] = fake.events
    body = write["body"]
    assert write["op"] == "create"
    assert body["metadata"]["namespace"] == "prod"
    assert body["metadata"]["name"].startswith("web-1.")
    assert body["involvedObject"] == {
        "kind": "Pod", "apiVersion": "v1", "name": "web-1", "namespace": "prod", "uid": "u1", "resourceVersion": "7"
    }
    assert body["count"] == 1 and body["type"] == "Normal" and body["reason"] == "Scheduled"
    assert body["source"] == {"component": "scheduler", "host": "h1"}
    assert body["firstTimestamp"] == body["lastTimestamp"]
    await rec.close()


async def test_repeats_are_aggregated_into_count() -> None:
    fake = FakeClient()
    rec = EventRecorder(fake, "kubelet")
    for _ in range(3):
        rec.event(POD, WARNING, "BackOff", "Back-off restarting failed container")
    rec.eventf(POD, WARNING, "Failed", "Error: %s", "ImagePullBackOff")
    await rec.flush()
    ops = [(w["op"], w["body"].get("count")) for w in fake.events]
    assert ops == [("create", 1), ("patch", 2), ("patch", 3), ("create", 1)]
    name = fake.events[0]["body"]["metadata"]["name"]
    assert fake.events[1]["name"] == name
    stored = fake.objects[f"prod/{name}"]
    assert stored["count"] == 3
    await rec.close()


async def test_cluster_scoped_object_events_go_to_default_and_deleted_event_is_recreated() -> None:
    fake = FakeClient()
    rec = EventRecorder(fake, "node-controller")
    rec.event(NODE, NORMAL, "NodeReady", "Node n1 status is now: NodeReady")
    await rec.flush()
    name = fake.events[0]["body"]["metadata"]["name"]
    assert fake.events[0]["body"]["metadata"]["namespace"] == "default"
    fake.remove(f"default/{name}")  # e.g. expired by the server's event TTL
    rec.event(NODE, NORMAL, "NodeReady", "Node n1 status is now: NodeReady")
    await rec.flush()
    # The patch hit 404 (the fake records only successful patches), so a new Event was created.
    assert [(w["op"], w["body"]["count"]) for w in fake.events] == [("create", 1), ("create", 1)]
    await rec.close()


async def test_write_failures_do_not_reach_the_caller() -> None:
    class Broken(FakeClient):
        async def create(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            raise ConnectionError("down")

    rec = EventRecorder(Broken(), "x")
    rec.event(POD, NORMAL, "R", "m")
    await rec.flush()
    await rec.close()
