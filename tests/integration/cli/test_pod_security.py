"""Pod Security admission and the externalIPs policy as a user meets them through `kubelite apply`: refusals that
name the violated check, namespaces labelled to allow more, warnings printed as kubectl prints them."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio
from conftest import RunningApiserver, start_apiserver

from apiserver.registry import Config as RegistryConfig

from .conftest import Kubelite, run_kubelite

IMAGE = "localhost:5000/kubelite/busybox:1.35"


def namespace(name: str, **levels: str) -> str:
    labels = {f"pod-security.kubernetes.io/{mode}": level for mode, level in levels.items()}
    return json.dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}})


def pod(name: str, ns: str = "default", **spec: Any) -> str:
    body = {"containers": [{"name": "c", "image": IMAGE}], **spec}
    return json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns},
                       "spec": body})


ROOT_HOSTPATH = {"volumes": [{"name": "root", "hostPath": {"path": "/"}}],
                 "containers": [{"name": "c", "image": IMAGE,
                                 "volumeMounts": [{"name": "root", "mountPath": "/host"}]}]}
PRIVILEGED = {"containers": [{"name": "c", "image": IMAGE, "securityContext": {"privileged": True}}]}


async def test_host_path_and_privileged_pods_are_refused_in_an_unlabelled_namespace(kubelite: Kubelite) -> None:
    """Without a label a namespace is baseline: `hostPath: /` and `privileged: true` are refused, naming the check,
    in Kubernetes' words; nothing is stored."""
    refused = await kubelite("apply", "-f", "-", stdin=pod("rooted", **ROOT_HOSTPATH))
    assert refused.code == 1
    assert refused.err_lines[-1].endswith('pods "rooted" is forbidden: violates PodSecurity "baseline:latest": '
                                          'hostPath volumes (volume "root")'), refused.err
    priv = await kubelite("apply", "-f", "-", stdin=pod("priv", **PRIVILEGED))
    assert priv.code == 1
    assert priv.err_lines[-1].endswith('pods "priv" is forbidden: violates PodSecurity "baseline:latest": privileged '
                                       '(container "c" must not set securityContext.privileged=true)'), priv.err
    got = await kubelite("get", "pods", "-o", "name")
    assert got.out == ""


async def test_a_namespace_labelled_privileged_admits_them(kubelite: Kubelite) -> None:
    """The same pods are admitted in a namespace labelled `enforce: privileged`, and in kube-system."""
    made = await kubelite("apply", "-f", "-", stdin=namespace("ops", enforce="privileged"))
    assert made.code == 0, made.err
    for name, spec in (("rooted", ROOT_HOSTPATH), ("priv", PRIVILEGED)):
        ok = await kubelite("apply", "-f", "-", stdin=pod(name, "ops", **spec))
        assert (ok.code, ok.out, ok.err) == (0, f"pod/{name} created\n", ""), ok.err
    system = await kubelite("apply", "-f", "-", stdin=pod("agent", "kube-system", hostNetwork=True, **PRIVILEGED))
    assert system.code == 0, system.err
    # Back to baseline: the pods keep running, and the change warns of them.
    stricter = await kubelite("apply", "-f", "-", stdin=namespace("ops", enforce="baseline"))
    assert (stricter.code, stricter.out) == (0, "namespace/ops configured\n"), stricter.err
    assert stricter.err_lines == [
        'Warning: existing pods in namespace "ops" violate the new PodSecurity enforce level "baseline:latest"',
        "Warning: priv: privileged", "Warning: rooted: hostPath volumes"]


async def test_restricted_namespace_and_warn_label(kubelite: Kubelite) -> None:
    """`enforce: restricted` refuses a plain pod listing every missing setting; `warn: restricted` admits it and
    prints kubectl's `Warning: would violate PodSecurity` line on stderr."""
    await kubelite("apply", "-f", "-", stdin=namespace("strict", enforce="restricted"))
    refused = await kubelite("apply", "-f", "-", stdin=pod("plain", "strict"))
    assert refused.code == 1
    assert refused.err_lines[-1].endswith(
        'pods "plain" is forbidden: violates PodSecurity "restricted:latest": allowPrivilegeEscalation != false '
        '(container "c" must set securityContext.allowPrivilegeEscalation=false), unrestricted capabilities '
        '(container "c" must set securityContext.capabilities.drop=["ALL"]), runAsNonRoot != true (pod or container '
        '"c" must set securityContext.runAsNonRoot=true), seccompProfile (pod or container "c" must set '
        'securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")'), refused.err
    restricted_ok = {"securityContext": {"runAsNonRoot": True, "runAsUser": 1000,
                                         "seccompProfile": {"type": "RuntimeDefault"}},
                     "containers": [{"name": "c", "image": IMAGE, "securityContext": {
                         "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}}]}
    ok = await kubelite("apply", "-f", "-", stdin=pod("tight", "strict", **restricted_ok))
    assert (ok.code, ok.err) == (0, ""), ok.err

    await kubelite("apply", "-f", "-", stdin=namespace("watched", warn="restricted"))
    warned = await kubelite("apply", "-f", "-", stdin=pod("plain", "watched"))
    assert (warned.code, warned.out) == (0, "pod/plain created\n"), warned.err
    assert warned.err_lines == [
        'Warning: would violate PodSecurity "restricted:latest": allowPrivilegeEscalation != false (container "c" '
        'must set securityContext.allowPrivilegeEscalation=false), unrestricted capabilities (container "c" must set '
        'securityContext.capabilities.drop=["ALL"]), runAsNonRoot != true (pod or container "c" must set '
        'securityContext.runAsNonRoot=true), seccompProfile (pod or container "c" must set '
        'securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")']


async def test_a_workload_is_admitted_with_a_warning_and_its_pods_refused(kubelite: Kubelite) -> None:
    """A Deployment whose template breaks baseline is created with a warning, as Kubernetes does."""
    deploy = json.dumps({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "agent"},
        "spec": {"selector": {"matchLabels": {"app": "agent"}},
                 "template": {"metadata": {"labels": {"app": "agent"}},
                              "spec": {"hostNetwork": True, "containers": [{"name": "c", "image": IMAGE}]}}}})
    made = await kubelite("apply", "-f", "-", stdin=deploy)
    assert (made.code, made.out) == (0, "deployment.apps/agent created\n"), made.err
    assert made.err_lines == ['Warning: would violate PodSecurity "baseline:latest": host namespaces (hostNetwork)']


async def test_kubectl_label_sets_the_level(kubelite: Kubelite) -> None:
    """`kubelite label namespace` sets a level as kubectl does in Kubernetes' documentation; a bad value is refused."""
    await kubelite("apply", "-f", "-", stdin=namespace("team"))
    labelled = await kubelite("label", "--overwrite", "namespace", "team",
                              "pod-security.kubernetes.io/enforce=privileged")
    assert labelled.code == 0, labelled.err
    ok = await kubelite("apply", "-f", "-", stdin=pod("priv", "team", **PRIVILEGED))
    assert ok.code == 0, ok.err
    bad = await kubelite("label", "--overwrite", "namespace", "team", "pod-security.kubernetes.io/enforce=open")
    assert bad.code == 1
    assert "metadata.labels[pod-security.kubernetes.io/enforce]: Unsupported value: 'open'" in bad.err, bad.err


async def test_bad_pod_security_labels_and_unenforced_fields_are_refused(kubelite: Kubelite) -> None:
    """A level kubelite does not know, and securityContext fields it cannot enforce, are errors naming the field."""
    bad = await kubelite("apply", "-f", "-", stdin=namespace("typo", enforce="strict"))
    assert bad.code == 1
    assert "metadata.labels[pod-security.kubernetes.io/enforce]: Unsupported value: 'strict'" in bad.err, bad.err
    selinux = {"containers": [{"name": "c", "image": IMAGE,
                               "securityContext": {"seLinuxOptions": {"level": "s0:c1"}}}]}
    refused = await kubelite("apply", "-f", "-", stdin=pod("labelled", **selinux))
    assert refused.code == 1
    assert "spec.containers[0].securityContext.seLinuxOptions: Forbidden: kubelite does not enforce it" in \
        refused.err, refused.err


SERVICE = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "evil"},
           "spec": {"selector": {"app": "x"}, "ports": [{"port": 53}], "externalIPs": ["8.8.8.8"]}}


async def test_external_ips_are_refused_by_default(kubelite: Kubelite) -> None:
    """A Service with externalIPs is refused, naming spec.externalIPs and the flag that would allow it."""
    refused = await kubelite("apply", "-f", "-", stdin=json.dumps(SERVICE))
    assert refused.code == 1
    assert 'spec.externalIPs[0]: Forbidden: externalIPs are not allowed: the apiserver allows none (it takes a list ' \
           'of CIDRs with --service-external-ip-cidrs)' in refused.err, refused.err
    assert (await kubelite("get", "services", "evil")).code == 1


@pytest_asyncio.fixture
async def allowing(etcd: str) -> AsyncIterator[RunningApiserver]:
    running = await start_apiserver(etcd, registry=RegistryConfig(external_ip_cidrs="192.0.2.0/24"))
    try:
        yield running
    finally:
        await running.stop()


async def test_external_ips_inside_the_allowed_cidrs_are_accepted(allowing: RunningApiserver,
                                                                  cli_env: dict[str, str]) -> None:
    """With --service-external-ip-cidrs, an address inside is accepted and one outside refused."""
    inside = {**SERVICE, "spec": {**SERVICE["spec"], "externalIPs": ["192.0.2.10"]}}  # type: ignore[dict-item]
    ok = await run_kubelite("apply", "-f", "-", "--server", allowing.address, env=cli_env, stdin=json.dumps(inside))
    assert (ok.code, ok.out) == (0, "service/evil created\n"), ok.err
    outside = {**SERVICE, "metadata": {"name": "evil2"}}
    refused = await run_kubelite("apply", "-f", "-", "--server", allowing.address, env=cli_env,
                                 stdin=json.dumps(outside))
    assert refused.code == 1
    assert "spec.externalIPs[0]: Forbidden: not in the external IP CIDRs the apiserver allows (192.0.2.0/24)" in \
        refused.err, refused.err
