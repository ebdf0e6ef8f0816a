"""plan_drain: kubectl's drain filters, sorting a node's pods into evicted, warned about and refused."""

from __future__ import annotations

import pytest

from api.pb import core_pb2
from cli.drain import plan_drain


def pod(name: str, *, owner: str = "ReplicaSet", owner_uid: str = "rs-uid", empty_dir: bool = False,
        phase: str = "Running", mirror: bool = False) -> core_pb2.Pod:
    p = core_pb2.Pod(metadata={"name": name, "namespace": "default"})
    if owner:
        p.metadata.owner_references.add(kind=owner, name="o", uid=owner_uid, controller=True)
    if empty_dir:
        p.spec.volumes.add(name="scratch").empty_dir.SetInParent()
    if mirror:
        p.metadata.annotations["kubernetes.io/config.mirror"] = "x"
    p.status.phase = phase
    return p


@pytest.mark.parametrize(("pods", "flags", "evict", "warnings", "errors"), [
    pytest.param([pod("a")], {}, ["a"], {}, {}, id="replicated-pod"),
    pytest.param([pod("d", owner="DaemonSet", owner_uid="ds")], {}, [], {},
                 {"cannot delete DaemonSet-managed Pods (use --ignore-daemonsets to ignore)": ["default/d"]},
                 id="daemonset-refused"),
    pytest.param([pod("d", owner="DaemonSet", owner_uid="ds")], {"ignore_daemonsets": True}, [],
                 {"ignoring DaemonSet-managed Pods": ["default/d"]}, {}, id="daemonset-ignored"),
    pytest.param([pod("d", owner="DaemonSet", owner_uid="gone")], {"force": True}, ["d"], {}, {},
                 id="orphaned-daemon-pod-forced"),
    pytest.param([pod("b", owner="")], {}, [], {},
                 {"cannot delete Pods declare no controller (use --force to override)": ["default/b"]},
                 id="bare-pod-refused"),
    pytest.param([pod("b", owner="")], {"force": True}, ["b"],
                 {"deleting Pods that declare no controller": ["default/b"]}, {}, id="bare-pod-forced"),
    pytest.param([pod("e", empty_dir=True)], {}, [], {},
                 {"cannot delete Pods with local storage (use --delete-emptydir-data to override)": ["default/e"]},
                 id="emptydir-refused"),
    pytest.param([pod("e", empty_dir=True)], {"delete_emptydir_data": True}, ["e"],
                 {"deleting Pods with local storage": ["default/e"]}, {}, id="emptydir-allowed"),
    pytest.param([pod("f", owner="", empty_dir=True, phase="Succeeded")], {}, ["f"], {}, {},
                 id="finished-pods-go-freely"),
    pytest.param([pod("m", owner="", mirror=True)], {}, [], {}, {}, id="mirror-pods-stay"),
])
def test_filters(pods: list[core_pb2.Pod], flags: dict, evict: list[str], warnings: dict, errors: dict) -> None:
    """Each pod is evicted, warned about or refused as kubectl decides, by flag."""
    opts = {"ignore_daemonsets": False, "delete_emptydir_data": False, "force": False, **flags}
    got = plan_drain(pods, daemonsets_alive={"ds"}, **opts)
    assert [p.metadata.name for p in got.evict] == evict
    assert got.warnings == warnings and got.errors == errors
