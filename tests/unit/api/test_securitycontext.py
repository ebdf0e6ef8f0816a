"""securityContext: validation refuses what kubelite cannot enforce, naming the field; the effective settings merge
the pod's under the container's; runAsNonRoot is checked against the image's user with Kubernetes' messages."""

from __future__ import annotations

from typing import Any

import pytest

from api import convert, securitycontext, validation
from api.pb import core_pb2
from kubelet import specs
from kubelet.runtime.interface import Image, Security


def pod(spec: dict[str, Any]) -> core_pb2.Pod:
    body = {"containers": [{"name": "c", "image": "i"}], **spec}
    return convert.from_dict(core_pb2.Pod, {"metadata": {"name": "p", "namespace": "ns", "uid": "u1"},
                                            "spec": body})  # type: ignore[return-value]


def container_sc(**sc: Any) -> dict[str, Any]:
    return {"containers": [{"name": "c", "image": "i", "securityContext": sc}]}


def errors(spec: dict[str, Any]) -> list[tuple[str, str]]:
    return [(e.path, e.kind) for e in validation.validate(pod(spec))]


@pytest.mark.parametrize(("spec", "expected"), [
    pytest.param(container_sc(seLinuxOptions={"level": "s0:c1"}),
                 [("spec.containers[0].securityContext.seLinuxOptions", "Forbidden")], id="selinux"),
    pytest.param({"securityContext": {"appArmorProfile": {"type": "RuntimeDefault"}}},
                 [("spec.securityContext.appArmorProfile", "Forbidden")], id="apparmor"),
    pytest.param(container_sc(windowsOptions={"runAsUserName": "x"}),
                 [("spec.containers[0].securityContext.windowsOptions", "Forbidden")], id="windows"),
    pytest.param(container_sc(procMount="Unmasked"),
                 [("spec.containers[0].securityContext.procMount", "Forbidden")], id="proc-unmasked"),
    pytest.param(container_sc(procMount="Odd"),
                 [("spec.containers[0].securityContext.procMount", "Unsupported value")], id="proc-odd"),
    pytest.param(container_sc(seccompProfile={"type": "Localhost", "localhostProfile": "p.json"}),
                 [("spec.containers[0].securityContext.seccompProfile.type", "Forbidden")], id="seccomp-localhost"),
    pytest.param({"securityContext": {"seccompProfile": {"type": "Strict"}}},
                 [("spec.securityContext.seccompProfile.type", "Unsupported value")], id="seccomp-unknown"),
    pytest.param(container_sc(capabilities={"add": ["NET_ADMIN", "CAP_SYS_TIME", "FLY"]}),
                 [("spec.containers[0].securityContext.capabilities.add[2]", "Unsupported value")], id="capability"),
    pytest.param(container_sc(runAsUser=-1), [("spec.containers[0].securityContext.runAsUser", "Invalid value")],
                 id="negative-uid"),
    pytest.param({"securityContext": {"fsGroup": 2147483648}}, [("spec.securityContext.fsGroup", "Invalid value")],
                 id="big-gid"),
    pytest.param(container_sc(privileged=True, allowPrivilegeEscalation=False),
                 [("spec.containers[0].securityContext", "Invalid value")], id="privileged-no-escalation"),
    pytest.param({"securityContext": {"sysctls": [{"name": "kernel.panic", "value": "1"}]}},
                 [("spec.securityContext.sysctls[0].name", "Forbidden")], id="node-wide-sysctl"),
    pytest.param({"hostNetwork": True, "securityContext": {"sysctls": [{"name": "net.core.somaxconn", "value": "1"}]}},
                 [("spec.securityContext.sysctls[0].name", "Forbidden")], id="net-sysctl-host-network"),
    pytest.param({"securityContext": {"fsGroupChangePolicy": "Sometimes"}},
                 [("spec.securityContext.fsGroupChangePolicy", "Unsupported value")], id="fs-group-policy"),
    pytest.param({"securityContext": {"runAsUser": 1000, "runAsGroup": 1000, "supplementalGroups": [5],
                                      "fsGroup": 5, "fsGroupChangePolicy": "OnRootMismatch",
                                      "seccompProfile": {"type": "RuntimeDefault"},
                                      "sysctls": [{"name": "net.ipv4.ip_local_port_range", "value": "1 2"}]},
                  "containers": [{"name": "c", "image": "i", "securityContext": {
                      "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}, "readOnlyRootFilesystem": True,
                      "allowPrivilegeEscalation": False, "procMount": "Default", "runAsNonRoot": True}}]},
                 [], id="enforced-fields-accepted"),
])
def test_validation(spec: dict[str, Any], expected: list[tuple[str, str]]) -> None:
    """What kubelite cannot enforce, or what is malformed, is an error naming the field; what it enforces passes."""
    assert errors(spec) == expected


def test_effective_settings_merge_pod_under_container() -> None:
    """The container's runAsUser wins over the pod's; runAsGroup and runAsNonRoot come from the pod; capabilities
    and no_new_privs are the container's own."""
    p = pod({"securityContext": {"runAsUser": 1, "runAsGroup": 2, "runAsNonRoot": True, "supplementalGroups": [7],
                                 "fsGroup": 8, "seccompProfile": {"type": "RuntimeDefault"}},
             "containers": [{"name": "c", "image": "i", "securityContext": {
                 "runAsUser": 1000, "capabilities": {"drop": ["all"], "add": ["cap_net_raw"]},
                 "allowPrivilegeEscalation": False}}]})
    eff = securitycontext.effective(p.spec, p.spec.containers[0])
    assert eff == securitycontext.Effective(run_as_user=1000, run_as_group=2, run_as_non_root=True,
                                            supplemental_groups=(7,), fs_group=8, add_capabilities=("NET_RAW",),
                                            drop_capabilities=("ALL",), no_new_privs=True, seccomp="RuntimeDefault")
    assert specs.compute_security(p, p.spec.containers[0]) == Security(
        run_as_user=1000, run_as_group=2, supplemental_groups=(7, 8), add_capabilities=("NET_RAW",),
        drop_capabilities=("ALL",), no_new_privs=True, seccomp="RuntimeDefault")


WHO = '(pod: "p_ns(u1)", container: c)'


@pytest.mark.parametrize(("sc", "image", "message"), [
    pytest.param({"runAsNonRoot": True}, Image("x", uid=0), f"container has runAsNonRoot and image will run as root "
                                                             f"{WHO}", id="root-image"),
    pytest.param({"runAsNonRoot": True}, Image("x"), f"container has runAsNonRoot and image will run as root {WHO}",
                 id="image-names-no-user"),
    pytest.param({"runAsNonRoot": True}, Image("x", username="nginx"),
                 f"container has runAsNonRoot and image has non-numeric user (nginx), cannot verify user is non-root "
                 f"{WHO}", id="named-user"),
    pytest.param({"runAsNonRoot": True, "runAsUser": 0}, None, f"container's runAsUser breaks non-root policy {WHO}",
                 id="run-as-user-0"),
    pytest.param({"runAsNonRoot": True}, Image("x", uid=101), "", id="non-root-image"),
    pytest.param({"runAsNonRoot": True, "runAsUser": 1000}, None, "", id="run-as-user-1000"),
    pytest.param({}, Image("x", uid=0), "", id="no-policy"),
])
def test_run_as_non_root(sc: dict[str, Any], image: Image | None, message: str) -> None:
    """runAsNonRoot refuses what would run as root, with the kubelet's messages."""
    p = pod(container_sc(**sc))
    c = p.spec.containers[0]
    if message:
        with pytest.raises(securitycontext.NonRootError) as e:
            specs.compute_security(p, c, image)
        assert str(e.value) == message
    else:
        specs.compute_security(p, c, image)


def test_run_as_group_takes_the_image_user() -> None:
    """A runAsGroup without runAsUser runs as the image's user (the runtime takes a group only with a user)."""
    p = pod(container_sc(runAsGroup=3000))
    c = p.spec.containers[0]
    assert specs.needs_image_user(p, c)
    assert specs.compute_security(p, c, Image("x", uid=101)).run_as_user == 101
    named = specs.compute_security(p, c, Image("x", username="www"))
    assert (named.run_as_user, named.run_as_username, named.run_as_group) == (None, "www", 3000)
    given = pod(container_sc(runAsUser=5, runAsGroup=3000))
    assert not specs.needs_image_user(given, given.spec.containers[0])
