"""The memo behind pure spec checks: one computation per (tag, encoding), bounded in entries and key size."""

from __future__ import annotations

from api import validation
from api.memo import MAX_KEY_BYTES, Memo
from api.pb import core_pb2


def counting() -> tuple[list[int], Memo[int]]:
    calls: list[int] = []
    return calls, Memo(entries=2)


def test_computed_once_per_tag_and_encoding() -> None:
    calls, memo = counting()

    def compute() -> int:
        calls.append(1)
        return len(calls)

    assert memo.get("a", b"x", compute) == 1
    assert memo.get("a", b"x", compute) == 1
    assert memo.get("b", b"x", compute) == 2  # another tag
    assert memo.get("a", b"y", compute) == 3  # another encoding; the memo holds two, "a"/b"x" goes
    assert memo.get("a", b"x", compute) == 4
    assert len(calls) == 4


def test_large_encodings_are_never_kept() -> None:
    calls, memo = counting()
    big = b"x" * (MAX_KEY_BYTES + 1)
    for _ in range(3):
        memo.get("a", big, lambda: calls.append(1))
    assert len(calls) == 3


def test_pod_spec_errors_follow_the_spec_and_its_path() -> None:
    """The same bad spec under two paths, and a good spec after a bad one with the same containers."""
    bad = core_pb2.PodSpec(containers=[{"name": "Bad_Name", "image": "busybox"}])
    good = core_pb2.PodSpec(containers=[{"name": "ok", "image": "busybox"}])
    for _ in range(2):
        at_pod: list = []
        validation.validate_pod_spec(bad, "spec", at_pod)
        at_template: list = []
        validation.validate_pod_spec(bad, "spec.template.spec", at_template)
        assert [e.path for e in at_pod] == ["spec.containers[0].name"]
        assert [e.path for e in at_template] == ["spec.template.spec.containers[0].name"]
        fine: list = []
        validation.validate_pod_spec(good, "spec", fine)
        assert fine == []
