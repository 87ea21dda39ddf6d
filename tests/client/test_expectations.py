from sampan.client.expectations import ControllerExpectations, UIDTrackingExpectations


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_no_record_is_satisfied() -> None:
    assert ControllerExpectations().satisfied("ns/rs")


def test_creations_observed() -> None:
    e = ControllerExpectations()
    e.expect_creations("ns/rs", 2)
    assert not e.satisfied("ns/rs")
    e.creation_observed("ns/rs")
    assert not e.satisfied("ns/rs")
    e.creation_observed("ns/rs")
    assert e.satisfied("ns/rs")
    e.creation_observed("ns/rs")  # an extra observation keeps it satisfied
    assert e.satisfied("ns/rs")


def test_deletions_and_lower_raise() -> None:
    e = ControllerExpectations()
    e.expect_deletions("k", 1)
    e.raise_expectations("k", 1, 0)
    e.deletion_observed("k")
    assert not e.satisfied("k")
    e.lower_expectations("k", 1, 0)  # a create that failed will never be observed
    assert e.satisfied("k")
    e.delete("k")
    assert e.get("k") is None


def test_expiry() -> None:
    clock = FakeClock()
    e = ControllerExpectations(ttl=300, clock=clock)
    e.expect_creations("k", 5)
    clock.now += 299
    assert not e.satisfied("k")
    clock.now += 2
    assert e.satisfied("k")


def test_observing_unknown_key_is_harmless() -> None:
    e = ControllerExpectations()
    e.creation_observed("nope")
    e.deletion_observed("nope")
    assert e.get("nope") is None


def test_uid_tracking_counts_each_delete_once() -> None:
    e = UIDTrackingExpectations()
    e.expect_deletions("ns/rs", ["ns/p1", "ns/p2"])
    assert not e.satisfied("ns/rs")
    assert e.get_uids("ns/rs") == {"ns/p1", "ns/p2"}
    e.deletion_observed("ns/rs", "ns/p1")
    e.deletion_observed("ns/rs", "ns/p1")  # seen twice (watch + relist)
    e.deletion_observed("ns/rs", "ns/other")  # not one we deleted
    assert not e.satisfied("ns/rs")
    e.deletion_observed("ns/rs", "ns/p2")
    assert e.satisfied("ns/rs")
    e.delete("ns/rs")
    assert e.get_uids("ns/rs") == set()
    assert e.get("ns/rs") is None


def test_uid_tracking_creations_pass_through() -> None:
    e = UIDTrackingExpectations()
    e.expect_creations("k", 1)
    assert not e.satisfied("k")
    e.creation_observed("k")
    assert e.satisfied("k")
