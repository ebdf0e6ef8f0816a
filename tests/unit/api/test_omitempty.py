"""JSON and YAML output as Kubernetes prints it: fields without `omitempty` appear with their zero values, empty
optional fields do not."""

from __future__ import annotations

from typing import Any

import pytest
from google.protobuf.message import Message

from api import convert, omitempty
from api.pb import (
    apps_pb2,
    batch_pb2,
    core_pb2,
    discovery_pb2,
    meta_pb2,
    networking_pb2,
    policy_pb2,
    scheduling_pb2,
    storage_pb2,
)


def _msg(cls: type[Message], data: dict[str, Any]) -> Message:
    return convert.from_dict(cls, data)


# Each expected value is what `kubectl get -o json` prints for the same object (times aside).
@pytest.mark.parametrize(("msg", "printed"), [
    pytest.param(
        _msg(core_pb2.ContainerStatus, {"name": "c", "image": "busybox", "started": False,
                                        "state": {"waiting": {"reason": "ContainerCreating"}}}),
        {"name": "c", "state": {"waiting": {"reason": "ContainerCreating"}}, "lastState": {}, "ready": False,
         "restartCount": 0, "image": "busybox", "imageID": "", "started": False},
        id="fresh-container-status"),
    pytest.param(
        _msg(core_pb2.ContainerStatus, {"name": "c", "image": "busybox", "imageID": "sha256:1", "ready": False,
                                        "containerID": "containerd://9", "started": False,
                                        "state": {"terminated": {"reason": "Completed",
                                                                 "containerID": "containerd://9"}}}),
        {"name": "c", "state": {"terminated": {"exitCode": 0, "reason": "Completed", "containerID": "containerd://9"}},
         "lastState": {}, "ready": False, "restartCount": 0, "image": "busybox", "imageID": "sha256:1",
         "containerID": "containerd://9", "started": False},
        id="completed-container-exit-code-0"),
    pytest.param(
        _msg(core_pb2.PodStatus, {"phase": "Pending", "qosClass": "BestEffort",
                                  "conditions": [{"type": "PodScheduled", "status": "False"}]}),
        {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False"}], "qosClass": "BestEffort"},
        id="pod-status-omits-empty-ips-reason-message"),
    pytest.param(
        _msg(apps_pb2.ReplicaSetStatus, {"observedGeneration": 3}),
        {"replicas": 0, "observedGeneration": 3},
        id="replicaset-scaled-to-zero"),
    pytest.param(
        _msg(apps_pb2.DeploymentStatus, {"observedGeneration": 2}),
        {"observedGeneration": 2},
        id="deployment-status-replicas-omitempty"),
    pytest.param(
        _msg(apps_pb2.ReplicaSetSpec, {"replicas": 0, "selector": {"matchLabels": {"app": "web"}},
                                       "template": {"metadata": {"labels": {"app": "web"}},
                                                    "spec": {"containers": [{"name": "c", "image": "x"}]}}}),
        {"replicas": 0, "selector": {"matchLabels": {"app": "web"}},
         "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}},
        id="replicas-pointer-set-to-zero"),
    pytest.param(
        _msg(core_pb2.Service, {"metadata": {"name": "web"}, "spec": {"ports": [{"port": 80, "protocol": "TCP",
                                                                                 "targetPort": 8080}]}}),
        {"metadata": {"name": "web"}, "spec": {"ports": [{"protocol": "TCP", "port": 80, "targetPort": 8080}]},
         "status": {"loadBalancer": {}}},
        id="service-status-load-balancer"),
    pytest.param(
        _msg(core_pb2.NodeStatus, {"daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
                                   "nodeInfo": {"kubeletVersion": "v1.30.0", "operatingSystem": "linux",
                                                "architecture": "amd64"}}),
        {"daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
         "nodeInfo": {"machineID": "", "systemUUID": "", "bootID": "", "kernelVersion": "", "osImage": "",
                      "containerRuntimeVersion": "", "kubeletVersion": "v1.30.0", "kubeProxyVersion": "",
                      "operatingSystem": "linux", "architecture": "amd64"}},
        id="node-info-every-field"),
    pytest.param(
        _msg(core_pb2.Event, {"metadata": {"name": "e"}, "involvedObject": {"kind": "Pod", "name": "p"},
                              "reason": "Scheduled", "count": 1, "type": "Normal"}),
        {"metadata": {"name": "e"}, "involvedObject": {"kind": "Pod", "name": "p"}, "reason": "Scheduled",
         "source": {}, "count": 1, "type": "Normal", "reportingComponent": "", "reportingInstance": ""},
        id="event-reporting-fields"),
    pytest.param(
        _msg(core_pb2.Taint, {"key": "dedicated", "effect": "NoExecute"}),
        {"key": "dedicated", "effect": "NoExecute"},
        id="taint-without-value"),
    pytest.param(
        _msg(core_pb2.Toleration, {"operator": "Exists"}),
        {"operator": "Exists"},
        id="toleration-all-omitempty"),
    pytest.param(
        _msg(core_pb2.Container, {"name": "c", "image": "x", "ports": [{"containerPort": 0, "protocol": "TCP"}]}),
        {"name": "c", "image": "x", "ports": [{"containerPort": 0, "protocol": "TCP"}]},
        id="container-port-zero"),
    pytest.param(
        _msg(apps_pb2.LeaseSpec, {"holderIdentity": "n1", "leaseDurationSeconds": 0}),
        {"holderIdentity": "n1", "leaseDurationSeconds": 0},
        id="pointer-fields-printed-when-set"),
    pytest.param(
        _msg(meta_pb2.OwnerReference, {"name": "web", "controller": True}),
        {"apiVersion": "", "kind": "", "name": "web", "uid": "", "controller": True},
        id="owner-reference-required-fields"),
    pytest.param(
        _msg(core_pb2.PodCondition, {"type": "Ready", "status": "True"}),
        {"type": "Ready", "status": "True"},
        id="condition-times-left-out-when-unset"),
])
def test_printed_as_kubernetes_prints(msg: Message, printed: dict[str, Any]) -> None:
    """Zero values appear exactly where Kubernetes prints them, in Kubernetes' field order."""
    out = convert.to_dict(msg)
    assert out == printed
    assert list(out) == list(printed)


def test_fresh_pod_restart_count_for_jq() -> None:
    """`get pod -o json | jq .status.containerStatuses[0].restartCount` gives 0 for a fresh pod."""
    pod = core_pb2.Pod(metadata={"name": "p"})
    pod.spec.containers.add(name="c", image="x")
    pod.status.container_statuses.add(name="c", image="x")
    printed = convert.object_to_manifest(pod)
    assert printed["status"]["containerStatuses"][0]["restartCount"] == 0
    assert printed["status"]["containerStatuses"][0]["ready"] is False
    assert "restartCount: 0" in convert.dump_yaml(printed)


@pytest.mark.parametrize("name", sorted(omitempty.ALWAYS))
def test_table_names_real_fields(name: str) -> None:
    """Every entry names a message and fields it has, each with a zero value to print."""
    desc = next((m.DESCRIPTOR for m in (core_pb2, apps_pb2, meta_pb2, scheduling_pb2, storage_pb2, networking_pb2,
                                        discovery_pb2, batch_pb2, policy_pb2)
                 if name in m.DESCRIPTOR.message_types_by_name), None)
    assert desc is not None, f"no message {name}"
    message = desc.message_types_by_name[name]
    by_json = {f.json_name: f for f in message.fields}
    for field in omitempty.ALWAYS[name]:
        assert field in by_json, f"{name} has no field {field}"
        assert convert.printable_zero(by_json[field]), f"{name}.{field} has no zero value Kubernetes prints"
