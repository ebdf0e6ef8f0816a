"""Real kubectl (v1.32, from the PATH) against a real apiserver's REST face over real etcd."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import testpki
from conftest import RunningApiserver, start_apiserver

from api import kinds
from client import kubeconfig, pki

ROOT = Path(__file__).resolve().parents[3]
KUBECTL = shutil.which("kubectl")
pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not on the PATH (these tests drive the real "
                                                        "kubectl against the REST API)")


@pytest.fixture
async def rest(etcd: str) -> AsyncIterator[RunningApiserver]:
    running = await start_apiserver(etcd, rest_listen=["127.0.0.1:0"])
    try:
        yield running
    finally:
        await running.stop()


def write_kubeconfig(server: RunningApiserver, path: Path, identity: str = "admin") -> Path:
    pki = testpki.get()
    path.write_text(kubeconfig.render(f"https://127.0.0.1:{server.server.rest_ports[0]}", pki.pem("ca"),
                                      pki.pem(identity), pki.pem(identity, "key"), user=identity))
    return path


async def kubectl(config: Path, *args: str, check: bool = True,
                  env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run kubectl beside the apiserver's event loop; its output as text."""
    result = await asyncio.to_thread(
        subprocess.run, [str(KUBECTL), "--kubeconfig", str(config), *args], capture_output=True, text=True,
        timeout=60, env={"HOME": str(config.parent), "TMPDIR": str(config.parent), "PATH": "/usr/bin:/bin",
                                 **(env or {})})
    if check:
        assert result.returncode == 0, f"kubectl {' '.join(args)}: {result.stdout}{result.stderr}"
    return result


async def test_kubectl_apply_get_scale_set_image_delete(rest: RunningApiserver, tmp_path: Path) -> None:
    """kubectl api-resources, apply -f examples/, get -o wide -l, scale, set image, rollout restart, label,
    delete -f: each as against Kubernetes."""
    config = write_kubeconfig(rest, tmp_path / "kubeconfig")
    resources = (await kubectl(config, "api-resources")).stdout
    assert "deployments" in resources and "deploy" in resources and "apps/v1" in resources
    assert (await kubectl(config, "get", "nodes")).stderr.strip() == "No resources found"
    applied = await kubectl(config, "apply", "-f", str(ROOT / "examples"))
    assert "deployment.apps/web created" in applied.stdout
    assert "service/web created" in applied.stdout
    again = await kubectl(config, "apply", "-f", str(ROOT / "examples"))
    assert "deployment.apps/web unchanged" in again.stdout
    deploys = (await kubectl(config, "get", "deployments", "-o", "wide")).stdout.splitlines()
    assert deploys[0].split()[:5] == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert deploys[1].split()[0] == "web"
    await kubectl(config, "create", "-f", str(ROOT / "examples" / "client.yaml"), "--dry-run=client")
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-1", "labels": {"app": "web"}},
           "spec": {"containers": [{"name": "web", "image": "busybox:1.36"}], "nodeName": "n1"}}
    (tmp_path / "pod.json").write_text(json.dumps(pod))
    await kubectl(config, "create", "-f", str(tmp_path / "pod.json"))
    pods = (await kubectl(config, "get", "pods", "-o", "wide", "-l", "app=web")).stdout.splitlines()
    assert pods[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE", "NOMINATED", "NODE"]
    assert pods[1].split()[:4] == ["web-1", "0/1", "Pending", "0"]
    assert pods[1].split()[-2:] == ["n1", "<none>"]
    assert len(pods) == 2
    await kubectl(config, "scale", "deployment", "web", "--replicas", "5")
    assert (await kubectl(config, "get", "deploy", "web", "-o", "jsonpath={.spec.replicas}")).stdout == "5"
    await kubectl(config, "set", "image", "deployment/web", "web=busybox:1.37")
    image = (await kubectl(config, "get", "deploy", "web", "-o",
                           "jsonpath={.spec.template.spec.containers[0].image}")).stdout
    assert image == "busybox:1.37"
    await kubectl(config, "label", "deployment", "web", "tier=front")
    await kubectl(config, "annotate", "deployment", "web", "note=hello")
    await kubectl(config, "rollout", "restart", "deployment/web")
    got = (await kubectl(config, "get", "deploy", "web", "-o", "jsonpath={.metadata.labels.tier}")).stdout
    assert got == "front"
    restarted = (await kubectl(config, "get", "deploy", "web", "-o",
                               "jsonpath={.spec.template.metadata.annotations}")).stdout
    assert "kubectl.kubernetes.io/restartedAt" in restarted
    await kubectl(config, "patch", "deployment", "web", "--type=json",
                  "-p", '[{"op": "replace", "path": "/spec/replicas", "value": 4}]')
    await kubectl(config, "patch", "deployment", "web", "--type=merge", "-p", '{"spec": {"minReadySeconds": 2}}')
    # kubectl runs an editor with spaces through the shell: the edit is this sed.
    edited = await kubectl(config, "edit", "deployment", "web",
                           env={"KUBE_EDITOR": "sed -i 's/replicas: 4/replicas: 3/'"})
    assert "deployment.apps/web edited" in edited.stdout
    spec = json.loads((await kubectl(config, "get", "deploy", "web", "-o", "json")).stdout)["spec"]
    assert (spec["replicas"], spec["minReadySeconds"]) == (3, 2)
    deleted = await kubectl(config, "delete", "-f", str(ROOT / "examples"))
    assert 'deployment.apps "web" deleted' in deleted.stdout
    missing = await kubectl(config, "get", "deployment", "web", check=False)
    assert missing.returncode != 0
    assert 'Error from server (NotFound): deployments.apps "web" not found' in missing.stderr


async def test_kubelite_kubeconfig_serves_kubectl(rest: RunningApiserver, tmp_path: Path) -> None:
    """`kubelite kubeconfig` writes the CLI's credentials and the cluster's REST URL as a kubeconfig kubectl
    reads; without the URL it says which flag gives it."""
    pki = testpki.get()
    cli_config = pki.config_file(tmp_path / "config.yaml", rest.address)
    env = {"KUBELITE_CONFIG": str(cli_config), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    kubelite = [sys.executable, "-m", "cli.main", "kubeconfig"]
    missing = await asyncio.to_thread(subprocess.run, kubelite, capture_output=True, text=True, env=env, timeout=60,
                                      cwd=ROOT)
    assert missing.returncode != 0 and "--rest-server" in missing.stderr
    url = f"https://127.0.0.1:{rest.server.rest_ports[0]}"
    out = tmp_path / "kubeconfig"
    made = await asyncio.to_thread(subprocess.run, [*kubelite, "--rest-server", url, "-o", str(out)],
                                   capture_output=True, text=True, env=env, timeout=60, cwd=ROOT)
    assert made.returncode == 0, made.stderr
    assert oct(out.stat().st_mode & 0o777) == "0o600"
    namespaces = (await kubectl(out, "get", "namespaces", "-o", "name")).stdout.split()
    assert "namespace/default" in namespaces and "namespace/kube-system" in namespaces


async def test_kubectl_without_credentials_is_unauthorized(rest: RunningApiserver, tmp_path: Path) -> None:
    """A kubeconfig with the CA but no client certificate gets kubectl's usual Unauthorized."""
    pki = testpki.get()
    config = tmp_path / "kubeconfig"
    config.write_text(kubeconfig.render_token(f"https://127.0.0.1:{rest.server.rest_ports[0]}", pki.pem("ca"),
                                              "not-a-token"))
    result = await kubectl(config, "get", "pods", check=False)
    assert result.returncode != 0
    assert "error: You must be logged in to the server" in result.stderr


async def test_kubectl_discovery_explain_and_watch(rest: RunningApiserver, tmp_path: Path) -> None:
    """kubectl uses aggregated discovery, lists exactly what `kubelite api-resources` does, explains fields from
    the OpenAPI v3 schemas, and `get -w` prints the table and stops at its timeout."""
    config = write_kubeconfig(rest, tmp_path / "kubeconfig")
    verbose = await kubectl(config, "get", "ns", "-v=8")
    assert "Content-Type: application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList" in verbose.stderr
    names = set((await kubectl(config, "api-resources", "-o", "name")).stdout.split())
    async with rest.client() as client:
        served = {r.name if "/" not in r.api_version else f"{r.name}.{r.api_version.rpartition('/')[0]}"
                  for r in await client.api_resources()}
    assert names == served
    explained = (await kubectl(config, "explain", "deployment.spec.strategy")).stdout
    assert "FIELD: strategy <DeploymentStrategy>" in explained and "rollingUpdate" in explained
    ports = (await kubectl(config, "explain", "pods.spec.containers.ports")).stdout
    assert "containerPort\t<integer>" in ports
    await kubectl(config, "apply", "-f", str(ROOT / "examples" / "client.yaml"))
    watched = await kubectl(config, "get", "pods", "-w", "--request-timeout=3s", check=False)
    lines = watched.stdout.splitlines()
    assert lines[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert lines[1].split()[:3] == ["client", "0/1", "Pending"]
    # kubectl has gone: its watch is released at once, not at the watch's timeout.
    store = rest.server.cache.store(kinds.lookup("pods"))
    for _ in range(50):
        if not store.watchers:
            break
        await asyncio.sleep(0.1)
    assert not store.watchers


async def test_a_view_only_user_gets_kubectls_forbidden(rest: RunningApiserver, tmp_path: Path) -> None:
    """A user bound to the default `view` ClusterRole reads with kubectl but gets "Error from server (Forbidden)"
    with Kubernetes' words for a write and for exec; the denials are in the audit log with the user's name."""
    admin = write_kubeconfig(rest, tmp_path / "admin")
    binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
               "metadata": {"name": "viewer-view"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
               "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "viewer"}]}
    (tmp_path / "binding.json").write_text(json.dumps(binding))
    await kubectl(admin, "apply", "-f", str(tmp_path / "binding.json"))
    ident = "users/viewer"
    if not (testpki.get().dir / f"{ident}.crt").exists():
        testpki.get().issue(ident, pki.Request(pki.Identity("viewer")))
    config = write_kubeconfig(rest, tmp_path / "viewer", identity=ident)
    await kubectl(admin, "apply", "-f", str(ROOT / "examples"))
    assert "client" in (await kubectl(config, "get", "pods")).stdout
    refused = await kubectl(config, "delete", "pod", "client", check=False)
    assert refused.returncode != 0
    assert 'Error from server (Forbidden): pods "client" is forbidden: User "viewer" cannot delete resource ' \
           '"pods" in API group "" in the namespace "default"' in refused.stderr, refused.stderr
    scaled = await kubectl(config, "scale", "deployment", "web", "--replicas", "2", check=False)
    assert scaled.returncode != 0 and "(Forbidden)" in scaled.stderr
    execd = await kubectl(config, "exec", "client", "--", "true", check=False)
    assert execd.returncode != 0
    assert 'cannot create resource "pods/exec"' in execd.stderr, execd.stderr



def _claims(token: str) -> dict[str, Any]:
    body = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))


async def test_kubectl_create_token_authenticates(rest: RunningApiserver, tmp_path: Path) -> None:
    """`kubectl create token` (protobuf body; with --duration, --audience, a pod bound) gets a token from the REST
    face that authenticates kubectl as the ServiceAccount (`kubectl auth whoami`); the TokenRequest API's limits
    and errors are the gRPC call's; a kubelet gets one only for its own pod, and a user without RBAC none."""
    config = write_kubeconfig(rest, tmp_path / "kubeconfig")
    url = f"https://127.0.0.1:{rest.server.rest_ports[0]}"
    made = await kubectl(config, "create", "token", "default", "-v=6")
    token = made.stdout.strip()
    claims = _claims(token)
    assert claims["sub"] == "system:serviceaccount:default:default" and claims["exp"] - claims["iat"] == 3600
    as_sa = tmp_path / "sa-kubeconfig"
    as_sa.write_text(kubeconfig.render_token(url, testpki.get().pem("ca"), token))
    whoami = (await kubectl(as_sa, "auth", "whoami")).stdout
    assert re.search(r"Username\s+system:serviceaccount:default:default", whoami), whoami
    assert re.search(r"Groups\s+\[system:serviceaccounts system:serviceaccounts:default system:authenticated\]",
                     whoami), whoami
    refused = await kubectl(as_sa, "get", "pods", check=False)
    assert 'User "system:serviceaccount:default:default" cannot list resource "pods"' in refused.stderr, \
        refused.stderr
    short = (await kubectl(config, "create", "token", "default", "--duration", "15m")).stdout.strip()
    assert _claims(short)["exp"] - _claims(short)["iat"] == 900
    elsewhere = (await kubectl(config, "create", "token", "default", "--audience", "vault")).stdout.strip()
    assert _claims(elsewhere)["aud"] == ["vault"]
    as_vault = tmp_path / "vault-kubeconfig"
    as_vault.write_text(kubeconfig.render_token(url, testpki.get().pem("ca"), elsewhere))
    assert "You must be logged in to the server" in (await kubectl(as_vault, "get", "pods", check=False)).stderr
    too_short = await kubectl(config, "create", "token", "default", "--duration", "5m", check=False)
    assert too_short.returncode != 0
    assert "spec.expirationSeconds: Invalid value" in too_short.stderr, too_short.stderr
    ghost = await kubectl(config, "create", "token", "ghost", check=False)
    assert 'serviceaccounts "ghost" not found' in ghost.stderr, ghost.stderr
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-1"},
           "spec": {"containers": [{"name": "web", "image": "busybox:1.36"}], "nodeName": "n1"}}
    (tmp_path / "pod.json").write_text(json.dumps(pod))
    await kubectl(config, "create", "-f", str(tmp_path / "pod.json"))
    uid = (await kubectl(config, "get", "pod", "web-1", "-o", "jsonpath={.metadata.uid}")).stdout
    bound = (await kubectl(config, "create", "token", "default", "--bound-object-kind", "Pod",
                           "--bound-object-name", "web-1")).stdout.strip()
    assert _claims(bound)["kubernetes.io"]["pod"] == {"name": "web-1", "uid": uid}
    as_pod = tmp_path / "pod-kubeconfig"
    as_pod.write_text(kubeconfig.render_token(url, testpki.get().pem("ca"), bound))
    assert "system:serviceaccount:default:default" in (await kubectl(as_pod, "get", "pods", check=False)).stderr
    secret = await kubectl(config, "create", "token", "default", "--bound-object-kind", "Secret",
                           "--bound-object-name", "s", check=False)
    assert secret.returncode != 0
    assert "spec.boundObjectRef.kind: Unsupported value: 'Secret'" in secret.stderr, secret.stderr
    testpki.get().node("n1")
    node = write_kubeconfig(rest, tmp_path / "n1-kubeconfig", identity="nodes/n1/kubelet")
    for_own = await kubectl(node, "create", "token", "default", "--bound-object-kind", "Pod",
                            "--bound-object-name", "web-1", "--bound-object-uid", uid)
    assert _claims(for_own.stdout.strip())["kubernetes.io"]["pod"]["name"] == "web-1"
    unbound = await kubectl(node, "create", "token", "default", check=False)
    assert 'User "system:node:n1" cannot create resource "serviceaccounts/token"' in unbound.stderr, unbound.stderr
    if not (testpki.get().dir / "users/viewer.crt").exists():
        testpki.get().issue("users/viewer", pki.Request(pki.Identity("viewer")))
    viewer = write_kubeconfig(rest, tmp_path / "viewer", identity="users/viewer")
    denied = await kubectl(viewer, "create", "token", "default", check=False)
    assert 'User "viewer" cannot create resource "serviceaccounts/token"' in denied.stderr, denied.stderr
    await kubectl(config, "delete", "pod", "web-1", "--grace-period=0", "--force")
    assert "You must be logged in to the server" in (await kubectl(as_pod, "get", "pods", check=False)).stderr



async def test_kubectl_explain_from_openapi_v2(rest: RunningApiserver, tmp_path: Path) -> None:
    """`kubectl explain --output plaintext-openapiv2` reads /openapi/v2 in the protobuf encoding kubectl asks for:
    fields, their types and nested kinds as from v3."""
    config = write_kubeconfig(rest, tmp_path / "kubeconfig")
    verbose = await kubectl(config, "explain", "deployment.spec.strategy", "--output", "plaintext-openapiv2",
                            "-v=6")
    assert "GET https://127.0.0.1:" in verbose.stderr and "/openapi/v2" in verbose.stderr
    assert "KIND:     Deployment" in verbose.stdout and "VERSION:  apps/v1" in verbose.stdout
    assert "rollingUpdate\t<Object>" in verbose.stdout and "type\t<string>" in verbose.stdout
    ports = (await kubectl(config, "explain", "pods.spec.containers.ports", "--output", "plaintext-openapiv2")).stdout
    assert "RESOURCE: ports <[]Object>" in ports and "containerPort\t<integer>" in ports
    labels = (await kubectl(config, "explain", "pods.metadata.labels", "--output", "plaintext-openapiv2")).stdout
    assert "FIELD:    labels <map[string]string>" in labels



# kubectl's generators, each with what makes its protobuf differ from JSON: zeros that are values (replicas 0,
# minAvailable 0), inlined structs (an Ingress rule's http, an env's secretKeyRef name), maps of bytes (a
# Secret's data), times, int-or-strings (a Service's targetPort).
GENERATORS = [
    ("namespace", ["create", "namespace", "gen"]),
    ("configmap", ["create", "configmap", "gen", "--from-literal=a=b", "--from-literal=c=d"]),
    ("secret", ["create", "secret", "generic", "gen", "--from-literal=password=s3cret", "--type=Opaque"]),
    ("deployment", ["create", "deployment", "gen", "--image=busybox:1.36", "--replicas=0", "--port=8080",
                    "--", "sleep", "3600"]),
    ("service", ["create", "service", "nodeport", "gen", "--tcp=80:8080"]),
    ("serviceaccount", ["create", "serviceaccount", "gen"]),
    ("job", ["create", "job", "gen", "--image=busybox:1.36", "--", "true"]),
    ("cronjob", ["create", "cronjob", "gen", "--image=busybox:1.36", "--schedule=*/5 * * * *", "--", "true"]),
    ("role", ["create", "role", "gen", "--verb=get,list", "--resource=pods,secrets", "--resource-name=x"]),
    ("rolebinding", ["create", "rolebinding", "gen", "--role=gen", "--user=bob", "--serviceaccount=default:gen"]),
    ("clusterrole", ["create", "clusterrole", "gen", "--verb=get", "--non-resource-url=/healthz"]),
    ("clusterrolebinding", ["create", "clusterrolebinding", "gen", "--clusterrole=view", "--group=devs"]),
    ("priorityclass", ["create", "priorityclass", "gen", "--value=0", "--description=zero",
                       "--preemption-policy=Never"]),
    ("poddisruptionbudget", ["create", "poddisruptionbudget", "gen", "--selector=app=gen", "--min-available=0"]),
    ("ingress", ["create", "ingress", "gen", "--class=nginx", "--rule=gen.example/api*=gen:80",
                 "--default-backend=gen:80"]),
]
ALLOCATED = ("name", "uid", "resourceVersion", "creationTimestamp", "generation", "managedFields")


def _comparable(obj: dict[str, Any]) -> dict[str, Any]:
    """What the user asked for: the object without what the server assigns on each create (its name, as the
    JSON copy has another, and its uid wherever a controller's labels carry it)."""
    text = json.dumps(obj).replace(obj["metadata"]["uid"], "UID").replace('"gen-json"', '"gen"')
    obj = json.loads(text)
    for key in ALLOCATED:
        obj["metadata"].pop(key, None)
    obj["metadata"].get("labels", {}).pop("kubernetes.io/metadata.name", None)
    obj.pop("status", None)
    spec = obj.get("spec", {})
    for key in ("clusterIP", "clusterIPs"):
        spec.pop(key, None)
    for port in spec.get("ports", []):
        port.pop("nodePort", None)
    return obj


@pytest.mark.parametrize(("resource", "generator"), GENERATORS, ids=[g[0] for g in GENERATORS])
async def test_kubectl_generators_protobuf_reads_as_their_json(rest: RunningApiserver, tmp_path: Path,
                                                               resource: str, generator: list[str]) -> None:
    """`kubectl create <kind> ...` sends Kubernetes protobuf; the object it makes is the one the same command's
    JSON (`--dry-run=client -o json | kubectl create -f -`, under another name) makes."""
    config = write_kubeconfig(rest, tmp_path / "kubeconfig")
    cut = generator.index("--") if "--" in generator else len(generator)
    verbose = await kubectl(config, "-v=8", *generator)
    assert "Content-Type: application/vnd.kubernetes.protobuf" in verbose.stderr
    assert re.search(r"/gen (created|exposed)", verbose.stdout), verbose.stdout
    from_protobuf = json.loads((await kubectl(config, "get", resource, "gen", "-o", "json")).stdout)
    dry = json.loads((await kubectl(config, *generator[:cut], "--dry-run=client", "-o", "json",
                                    *generator[cut:])).stdout)
    dry["metadata"]["name"] = "gen-json"
    (tmp_path / "gen.json").write_text(json.dumps(dry))
    await kubectl(config, "create", "-f", str(tmp_path / "gen.json"))
    from_json = json.loads((await kubectl(config, "get", resource, "gen-json", "-o", "json")).stdout)
    a, b = _comparable(from_protobuf), _comparable(from_json)
    assert a == b, json.dumps(a, indent=1, sort_keys=True) + "\n---\n" + json.dumps(b, indent=1, sort_keys=True)
    if resource == "deployment":
        assert from_protobuf["spec"]["replicas"] == 0
    if resource == "secret":
        assert base64.b64decode(from_protobuf["data"]["password"]) == b"s3cret"
    if resource == "ingress":
        assert from_protobuf["spec"]["rules"][0]["http"]["paths"][0]["pathType"] == "Prefix"


async def test_kubectl_auth_can_i(rest: RunningApiserver, tmp_path: Path) -> None:
    """`kubectl auth can-i` (a SelfSubjectAccessReview, sent as protobuf) answers yes/no with exit 0/1 as the
    authorizer decides, also for another user (`--as`) and a path; `--list` prints the rules RBAC grants."""
    config = write_kubeconfig(rest, tmp_path / "kubeconfig")
    await kubectl(config, "create", "namespace", "dev")
    await kubectl(config, "create", "role", "reader", "-n", "dev", "--verb=get,list", "--resource=pods",
                  "--resource=deployments.apps", "--resource-name=web")
    await kubectl(config, "create", "rolebinding", "alice-reads", "-n", "dev", "--role=reader", "--user=alice")

    async def can_i(*args: str) -> tuple[int, str]:
        result = await kubectl(config, "auth", "can-i", *args, check=False)
        return result.returncode, result.stdout.strip()

    asked = await kubectl(config, "-v=8", "auth", "can-i", "create", "pods")
    assert "Content-Type: application/vnd.kubernetes.protobuf" in asked.stderr
    assert asked.stdout.strip() == "yes"
    assert await can_i("get", "pods/web", "-n", "dev", "--as=alice") == (0, "yes")
    assert await can_i("list", "deployments.apps/web", "-n", "dev", "--as=alice") == (0, "yes")
    assert await can_i("get", "pods/other", "-n", "dev", "--as=alice") == (1, "no")
    assert await can_i("get", "pods/web", "-n", "default", "--as=alice") == (1, "no")
    assert await can_i("create", "pods", "--subresource=exec", "-n", "dev", "--as=alice") == (1, "no")
    assert await can_i("get", "/healthz", "--as=alice") == (0, "yes")  # system:discovery
    assert await can_i("get", "/metrics", "--as=alice") == (1, "no")
    listed = await kubectl(config, "auth", "can-i", "--list", "-n", "dev", "--as=alice")
    rows = [line.split() for line in listed.stdout.splitlines()]
    assert rows[0] == ["Resources", "Non-Resource", "URLs", "Resource", "Names", "Verbs"]
    assert ["pods", "[]", "[web]", "[get", "list]"] in rows
    assert ["deployments.apps", "[]", "[web]", "[get", "list]"] in rows
    assert ["[/healthz]", "[]", "[get]"] in rows
    assert not any(row[0] == "*.*" for row in rows)
    everything = await kubectl(config, "auth", "can-i", "--list")
    assert ["*.*", "[]", "[]", "[*]"] in [line.split() for line in everything.stdout.splitlines()]
