"""Pod Security admission's checks and decisions, with Kubernetes' own cases (pod-security-admission's
policy/check_*_test.go) where it has them."""

from __future__ import annotations

from typing import Any

import pytest

from api import convert
from api.pb import core_pb2
from apiserver import podsecurity as ps


def pod(spec: dict[str, Any], annotations: dict[str, str] | None = None) -> core_pb2.Pod:
    meta: dict[str, Any] = {"name": "p"}
    if annotations:
        meta["annotations"] = annotations
    return convert.from_dict(core_pb2.Pod, {"metadata": meta, "spec": spec})  # type: ignore[return-value]


def c(name: str, **sc: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "image": "i"}
    if sc:
        out["securityContext"] = sc
    return out


# A pod that meets restricted (Kubernetes' documentation's example).
RESTRICTED_OK = {"securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
                 "containers": [c("a", allowPrivilegeEscalation=False, capabilities={"drop": ["ALL"]})]}


@pytest.mark.parametrize(("check", "spec", "annotations", "reason", "detail"), [
    pytest.param(ps.check_host_namespaces, {"hostNetwork": True, "hostPID": True, "hostIPC": True,
                                            "containers": [c("a")]}, None,
                 "host namespaces", "hostIPC, hostNetwork, hostPID", id="host-namespaces"),
    pytest.param(ps.check_host_path_volumes, {"volumes": [{"name": "root", "hostPath": {"path": "/"}},
                                                          {"name": "e", "emptyDir": {}}], "containers": [c("a")]},
                 None, "hostPath volumes", 'volume "root"', id="hostpath-one"),
    pytest.param(ps.check_host_path_volumes, {"volumes": [{"name": "a", "hostPath": {"path": "/a"}},
                                                          {"name": "b", "hostPath": {"path": "/b"}}],
                                              "containers": [c("a")]},
                 None, "hostPath volumes", 'volumes "a", "b"', id="hostpath-two"),
    pytest.param(ps.check_privileged, {"containers": [c("a", privileged=True), c("b", privileged=False),
                                                      c("c", privileged=True)]}, None,
                 "privileged", 'containers "a", "c" must not set securityContext.privileged=true', id="privileged"),
    pytest.param(ps.check_capabilities_baseline,
                 {"containers": [c("a", capabilities={"add": ["FOO", "BAR"]}),
                                 c("b", capabilities={"add": ["BAR", "BAZ"]}),
                                 c("c", capabilities={"add": ["CHOWN"]})]}, None,
                 "non-default capabilities",
                 'containers "a", "b" must not include "BAR", "BAZ", "FOO" in securityContext.capabilities.add',
                 id="capabilities-baseline-k8s"),
    pytest.param(ps.check_host_ports,
                 {"containers": [{"name": "a", "image": "i", "ports": [{"containerPort": 1, "hostPort": 10},
                                                                      {"containerPort": 2, "hostPort": 20}]},
                                 {"name": "b", "image": "i", "ports": [{"containerPort": 3, "hostPort": 30}]}]},
                 None, "hostPort", 'containers "a", "b" use hostPorts 10, 20, 30', id="host-ports"),
    pytest.param(ps.check_host_ports,
                 {"containers": [{"name": "a", "image": "i", "ports": [{"containerPort": 1, "hostPort": 80}]}]},
                 None, "hostPort", 'container "a" uses hostPort 80', id="host-port-one"),
    pytest.param(ps.check_app_armor, {"containers": [c("a")]},
                 {"container.apparmor.security.beta.kubernetes.io/a": "unconfined",
                  "container.apparmor.security.beta.kubernetes.io/b": "runtime/default",
                  "container.apparmor.security.beta.kubernetes.io/c": "localhost/x"},
                 "forbidden AppArmor profile", 'container.apparmor.security.beta.kubernetes.io/a="unconfined"',
                 id="apparmor-annotation"),
    pytest.param(ps.check_proc_mount, {"containers": [c("a", procMount="Unmasked"), c("b", procMount="Default")]},
                 None, "procMount", 'container "a" must not set securityContext.procMount to "Unmasked"',
                 id="proc-mount"),
    pytest.param(ps.check_seccomp_baseline,
                 {"securityContext": {"seccompProfile": {"type": "Unconfined"}},
                  "containers": [c("a", seccompProfile={"type": "Unconfined"}),
                                 c("b", seccompProfile={"type": "RuntimeDefault"})]}, None,
                 "seccompProfile", 'pod and container "a" must not set securityContext.seccompProfile.type to '
                                   '"Unconfined"', id="seccomp-unconfined"),
    pytest.param(ps.check_se_linux,
                 {"securityContext": {"seLinuxOptions": {"type": "foo", "user": "bar", "role": "baz"}},
                  "containers": [c("a", seLinuxOptions={"type": "container_t"}),
                                 c("b", seLinuxOptions={"type": "container_init_t"}),
                                 c("c", seLinuxOptions={"type": "container_kvm_t"}),
                                 c("d", seLinuxOptions={"type": "container_engine_t"}),
                                 c("e", seLinuxOptions={"type": "bar"}),
                                 c("f", seLinuxOptions={"user": "bar"}),
                                 c("g", seLinuxOptions={"role": "baz"})]}, None,
                 "seLinuxOptions", 'pod and containers "e", "f", "g" set forbidden securityContext.seLinuxOptions: '
                                   'types "bar", "foo"; user may not be set; role may not be set',
                 id="selinux-k8s-pod-and-containers"),
    pytest.param(ps.check_se_linux, {"securityContext": {"seLinuxOptions": {"user": "bad"}}, "containers": [c("a")]},
                 None, "seLinuxOptions", "pod set forbidden securityContext.seLinuxOptions: user may not be set",
                 id="selinux-k8s-bad-user"),
    pytest.param(ps.check_sysctls,
                 {"securityContext": {"sysctls": [{"name": "net.ipv4.tcp_syncookies", "value": "1"},
                                                  {"name": "kernel.msgmax", "value": "1"},
                                                  {"name": "net.core.somaxconn", "value": "1"}]},
                  "containers": [c("a")]}, None,
                 "forbidden sysctls", "kernel.msgmax, net.core.somaxconn", id="sysctls"),
    pytest.param(ps.check_windows_host_process,
                 {"securityContext": {"windowsOptions": {"hostProcess": True}},
                  "containers": [c("a", windowsOptions={"hostProcess": True}), c("b")]}, None,
                 "hostProcess", 'pod and container "a" must not set securityContext.windowsOptions.hostProcess=true',
                 id="host-process"),
    pytest.param(ps.check_host_probes,
                 {"containers": [{"name": "a", "image": "i", "livenessProbe": {"httpGet": {"port": "80",
                                                                                          "host": "10.0.0.1"}}}]},
                 None, "probe or lifecycle host", 'container "a" uses probe or lifecycle host "10.0.0.1"',
                 id="probe-host"),
    pytest.param(ps.check_allow_privilege_escalation,
                 {"containers": [c("a"), c("b", allowPrivilegeEscalation=True),
                                 c("c", allowPrivilegeEscalation=False)]},
                 None, "allowPrivilegeEscalation != false",
                 'containers "a", "b" must set securityContext.allowPrivilegeEscalation=false', id="ape"),
    pytest.param(ps.check_capabilities_restricted,
                 {"containers": [c("a", capabilities={"add": ["FOO", "BAR"]}),
                                 c("b", capabilities={"add": ["BAR", "BAZ"]}),
                                 c("c", capabilities={"add": ["NET_BIND_SERVICE", "CHOWN"], "drop": ["ALL", "FOO"]})]},
                 None, "unrestricted capabilities",
                 'containers "a", "b" must set securityContext.capabilities.drop=["ALL"]; containers "a", "b", "c" '
                 'must not include "BAR", "BAZ", "CHOWN", "FOO" in securityContext.capabilities.add',
                 id="capabilities-restricted-k8s"),
    pytest.param(ps.check_run_as_non_root, {"containers": [c("a")]}, None,
                 "runAsNonRoot != true", 'pod or container "a" must set securityContext.runAsNonRoot=true',
                 id="nonroot-k8s-unset"),
    pytest.param(ps.check_run_as_non_root, {"securityContext": {"runAsNonRoot": False}, "containers": [c("a")]},
                 None, "runAsNonRoot != true", "pod must not set securityContext.runAsNonRoot=false",
                 id="nonroot-k8s-pod-false"),
    pytest.param(ps.check_run_as_non_root,
                 {"securityContext": {"runAsNonRoot": True},
                  "containers": [c("a"), c("b", readOnlyRootFilesystem=False), c("c", runAsNonRoot=False),
                                 c("d", runAsNonRoot=False), c("e", runAsNonRoot=True)]}, None,
                 "runAsNonRoot != true", 'containers "c", "d" must not set securityContext.runAsNonRoot=false',
                 id="nonroot-k8s-containers-false"),
    pytest.param(ps.check_run_as_non_root,
                 {"containers": [c("a"), c("b", readOnlyRootFilesystem=False), c("d", runAsNonRoot=True)]}, None,
                 "runAsNonRoot != true", 'pod or containers "a", "b" must set securityContext.runAsNonRoot=true',
                 id="nonroot-k8s-fallthrough"),
    pytest.param(ps.check_run_as_user,
                 {"securityContext": {"runAsUser": 0}, "containers": [c("a", runAsUser=0), c("b", runAsUser=1)]},
                 None, "runAsUser=0", 'pod and container "a" must not set runAsUser=0', id="run-as-user-0"),
    pytest.param(ps.check_seccomp_restricted,
                 {"containers": [c("a"), c("b", seccompProfile={"type": "Localhost", "localhostProfile": "x"})]},
                 None, "seccompProfile",
                 'pod or container "a" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost"',
                 id="seccomp-required"),
    pytest.param(ps.check_restricted_volumes,
                 {"volumes": [{"name": "root", "hostPath": {"path": "/"}}, {"name": "ok", "emptyDir": {}}],
                  "containers": [c("a")]}, None,
                 "restricted volume types", 'volume "root" uses restricted volume type "hostPath"',
                 id="restricted-volumes"),
])
def test_check_reports_kubernetes_reason_and_detail(check: Any, spec: dict[str, Any],
                                                    annotations: dict[str, str] | None, reason: str,
                                                    detail: str) -> None:
    """Each check names what it forbids in Kubernetes' words."""
    p = pod(spec, annotations)
    assert check(p.metadata, p.spec) == ps.Violation(reason, detail)


@pytest.mark.parametrize("spec", [
    pytest.param({"containers": [c("a")]}, id="plain"),
    pytest.param({"containers": [c("a", capabilities={"add": ["NET_BIND_SERVICE", "CHOWN"]},
                                   seccompProfile={"type": "RuntimeDefault"}, procMount="Default")],
                  "securityContext": {"sysctls": [{"name": "net.ipv4.ip_local_port_range", "value": "1 2"}],
                                      "seLinuxOptions": {"type": "container_t"}}}, id="allowed-values"),
    pytest.param({"containers": [c("a", privileged=False, runAsUser=0)], "volumes": [{"name": "v", "emptyDir": {}}]},
                 id="root-is-baseline"),
])
def test_baseline_allows(spec: dict[str, Any]) -> None:
    """What baseline allows passes every baseline check."""
    p = pod(spec)
    assert ps.evaluate(ps.BASELINE, p.metadata, p.spec) == []


def test_restricted_allows_the_documented_pod_and_privileged_allows_anything() -> None:
    """A pod set up as the restricted level asks meets it; the privileged level checks nothing."""
    p = pod(RESTRICTED_OK)
    assert ps.evaluate(ps.RESTRICTED, p.metadata, p.spec) == []
    bad = pod({"hostNetwork": True, "containers": [c("a", privileged=True)],
               "volumes": [{"name": "root", "hostPath": {"path": "/"}}]})
    assert ps.evaluate(ps.PRIVILEGED, bad.metadata, bad.spec) == []


def test_messages_list_the_violations_in_kubernetes_order() -> None:
    """The message joins reason (detail) by check ID, as Kubernetes' `violates PodSecurity` message does."""
    p = pod({"hostNetwork": True, "volumes": [{"name": "root", "hostPath": {"path": "/"}}],
             "containers": [c("c", privileged=True)]})
    assert ps.message(("baseline", "latest"), ps.evaluate(ps.BASELINE, p.metadata, p.spec)) == (
        'violates PodSecurity "baseline:latest": host namespaces (hostNetwork), hostPath volumes (volume "root"), '
        'privileged (container "c" must not set securityContext.privileged=true)')
    plain = pod({"containers": [c("nginx")]})
    assert ps.message(("restricted", "latest"), ps.evaluate(ps.RESTRICTED, plain.metadata, plain.spec)) == (
        'violates PodSecurity "restricted:latest": allowPrivilegeEscalation != false (container "nginx" must set '
        'securityContext.allowPrivilegeEscalation=false), unrestricted capabilities (container "nginx" must set '
        'securityContext.capabilities.drop=["ALL"]), runAsNonRoot != true (pod or container "nginx" must set '
        'securityContext.runAsNonRoot=true), seccompProfile (pod or container "nginx" must set '
        'securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")')


def test_restricted_replaces_the_overlapping_baseline_checks() -> None:
    """At restricted, a hostPath volume is named once (restricted volume types), not also as hostPath volumes."""
    p = pod({**RESTRICTED_OK, "volumes": [{"name": "root", "hostPath": {"path": "/"}}]})
    assert [v.reason for v in ps.evaluate(ps.RESTRICTED, p.metadata, p.spec)] == ["restricted volume types"]


L = ps.LABEL_PREFIX


@pytest.mark.parametrize(("namespace", "labels", "expected"), [
    pytest.param("default", {}, ps.Policy(), id="unlabelled-is-baseline"),
    pytest.param("kube-system", {L + "enforce": "restricted"}, ps.Policy(enforce=("privileged", "latest")),
                 id="kube-system-privileged"),
    pytest.param("team", {L + "enforce": "restricted", L + "enforce-version": "v1.29", L + "warn": "restricted",
                          L + "audit": "baseline"},
                 ps.Policy(enforce=("restricted", "v1.29"), warn=("restricted", "latest"),
                           audit=("baseline", "latest")),
                 id="all-modes"),
    pytest.param("ops", {L + "enforce": "privileged"}, ps.Policy(enforce=("privileged", "latest")), id="privileged"),
])
def test_policy_from_namespace_labels(namespace: str, labels: dict[str, str], expected: ps.Policy) -> None:
    """A namespace's labels choose its levels; without them enforce is baseline; kube-system is privileged."""
    assert ps.policy_of(namespace, labels) == expected


@pytest.mark.parametrize(("labels", "path"), [
    pytest.param({L + "enforce": "strict"}, f"metadata.labels[{L}enforce]", id="bad-level"),
    pytest.param({L + "warn-version": "1.29"}, f"metadata.labels[{L}warn-version]", id="bad-version"),
])
def test_bad_labels_are_named(labels: dict[str, str], path: str) -> None:
    """A Pod Security label Kubernetes would not understand is an error naming the label."""
    assert [e.path for e in ps.label_errors(labels)] == [path]
    assert ps.label_errors({L + "enforce": "baseline", L + "enforce-version": "latest", L + "audit-version": "v1.30"}) \
        == []


HOSTPATH = {"volumes": [{"name": "root", "hostPath": {"path": "/"}}], "containers": [c("a")]}


def test_a_pod_is_refused_and_a_workload_warned() -> None:
    """A pod that breaks the enforce level is refused; the same template in a workload only warns."""
    p = pod(HOSTPATH)
    refused = ps.decide(ps.Policy(), p.metadata, p.spec, is_pod=True)
    assert refused.denied == 'violates PodSecurity "baseline:latest": hostPath volumes (volume "root")'
    warned = ps.decide(ps.Policy(), p.metadata, p.spec, is_pod=False)
    assert (warned.denied, warned.warnings) == (
        "", ('would violate PodSecurity "baseline:latest": hostPath volumes (volume "root")',))


def test_warn_and_audit_levels_admit_with_a_warning_and_a_record() -> None:
    """A pod that meets enforce but not warn is admitted with a warning; audit records without warning."""
    p = pod({"containers": [c("nginx")]})
    policy = ps.Policy(warn=("restricted", "latest"), audit=("restricted", "v1.30"))
    d = ps.decide(policy, p.metadata, p.spec, is_pod=True)
    assert d.denied == ""
    assert len(d.warnings) == 1 and d.warnings[0].startswith('would violate PodSecurity "restricted:latest": '
                                                             'allowPrivilegeEscalation != false')
    assert d.audit[0].startswith('violates PodSecurity "restricted:v1.30": ')
    ok = pod(RESTRICTED_OK)
    assert ps.decide(policy, ok.metadata, ok.spec, is_pod=True) == ps.Decision()


@pytest.mark.parametrize(("kind", "doc"), [
    pytest.param("Deployment", {"spec": {"template": {"spec": HOSTPATH}}}, id="deployment"),
    pytest.param("CronJob", {"spec": {"jobTemplate": {"spec": {"template": {"spec": HOSTPATH}}}}}, id="cronjob"),
])
def test_pod_template_of_workloads(kind: str, doc: dict[str, Any]) -> None:
    """A workload's pod template is found, through a CronJob's Job template too."""
    from api import kinds

    obj = convert.from_dict(kinds.lookup(kind).cls, {"metadata": {"name": "w"}, **doc})
    _, spec = ps.pod_template(obj)  # type: ignore[misc]
    assert [v.name for v in spec.volumes] == ["root"]


def test_a_stricter_namespace_level_names_the_pods_that_break_it() -> None:
    """Raising a namespace's enforce level warns of its pods that break the new level, grouped as Kubernetes does."""
    pods = [pod(HOSTPATH), pod({"hostNetwork": True, "containers": [c("a")]}), pod({"containers": [c("a")]})]
    for p, name in zip(pods, ("b-root", "a-net", "c-plain"), strict=True):
        p.metadata.name = name
    extra = pod({"hostNetwork": True, "containers": [c("a")]})
    extra.metadata.name = "d-net"
    assert ps.existing_pod_warnings("team", ("baseline", "latest"), [*pods, extra]) == [
        'existing pods in namespace "team" violate the new PodSecurity enforce level "baseline:latest"',
        "a-net (and 1 other pods): host namespaces",
        "b-root: hostPath volumes",
    ]
    assert ps.existing_pod_warnings("team", ("baseline", "latest"), [pods[2]]) == []
