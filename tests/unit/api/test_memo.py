"""The memo behind pure spec checks: one computation per (tag, encoding), bounded in entries and key size."""

from __future__ import annotations

from api import defaults, validation
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


def pod(name: str, spec: dict) -> core_pb2.Pod:
    return core_pb2.Pod(metadata={"name": name, "namespace": "default"}, spec=spec)


def test_control_characters_in_a_spec_are_found_in_every_pod_that_holds_it() -> None:
    """Pods of one spec named apart, a clean spec between, and a control character in the metadata beside."""
    bad = {"containers": [{"name": "c", "image": "busybox", "command": ["echo\x1b[2J"]}]}
    clean = {"containers": [{"name": "c", "image": "busybox", "command": ["echo"]}]}
    for i in range(2):
        assert [e.path for e in validation.validate(pod(f"a{i}", bad))] == ["spec.containers[0].command[0]"]
        assert validation.validate(pod(f"b{i}", clean)) == []
        tagged = pod(f"c{i}", bad)
        tagged.metadata.labels["k"] = "v\x00"
        assert sorted(e.path for e in validation.validate(tagged)) == ["metadata.labels[k]",
                                                                        "spec.containers[0].command[0]"]


def test_pod_defaults_follow_the_spec_and_the_toleration_seconds() -> None:
    """The same spec defaulted for two pods, with and without the not-ready tolerations, and a spec that sets
    what the other leaves to its default."""
    spec = {"containers": [{"name": "c", "image": "busybox:1.35"}]}
    for _ in range(2):
        a, b, c = pod("a", spec), pod("b", spec), pod("c", {**spec, "restart_policy": "Never"})
        defaults.pod(a, toleration_seconds=300)
        defaults.pod(b, toleration_seconds=None)
        defaults.pod(c, toleration_seconds=300)
        assert a.spec.restart_policy == "Always" and c.spec.restart_policy == "Never"
        assert a.spec.containers[0].image_pull_policy == "IfNotPresent"
        assert [t.toleration_seconds for t in a.spec.tolerations] == [300, 300]
        assert list(b.spec.tolerations) == []
        assert a.status.qos_class == "BestEffort" and a.status.phase == "Pending"
