"""The CLI's verbs as a user runs them: get, describe, delete, create namespace, api-resources, and where the
server address comes from."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest
import testpki
import yaml
from conftest import RunningApiserver, free_port

from api import convert, kinds
from client.api import Client

from .conftest import DOCS, KUBELITE, Kubelite, clean_env, run_kubelite


def _obj(doc: dict) -> object:
    return kinds.unwrap(convert.manifest_to_object(doc))


def _pod(name: str, namespace: str = "default", node: str = "", **labels: str) -> object:
    spec: dict = {"containers": [{"name": "c", "image": "nginx:1.25"}]}
    if node:
        spec["nodeName"] = node
    return _obj({"apiVersion": "v1", "kind": "Pod",
                 "metadata": {"name": name, "namespace": namespace, "labels": labels}, "spec": spec})


@pytest.fixture
async def pods(client: Client) -> None:
    """web-1 and web-2 (app=web), db-1 (app=db) in default, bound web-2 to node-1; sys-1 in kube-system."""
    await client.create(_pod("web-1", app="web", tier="a"))
    await client.create(_pod("web-2", app="web", tier="b"))
    await client.create(_pod("db-1", app="db"))
    await client.create(_pod("sys-1", "kube-system", app="sys"))
    await client.bind("default", "web-2", "node-1")


def _table(text: str) -> list[list[str]]:
    return [line.split() for line in text.splitlines()]


async def test_get_table(kubelite: Kubelite, pods: None) -> None:
    """`get pods` prints kubectl's columns for the default namespace."""
    result = await kubelite("get", "pods")
    assert result.code == 0, result.err
    rows = _table(result.out)
    assert rows[0] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert [r[:4] for r in rows[1:]] == [["db-1", "0/1", "Pending", "0"], ["web-1", "0/1", "Pending", "0"],
                                         ["web-2", "0/1", "Pending", "0"]]
    assert result.out.splitlines()[0].startswith("NAME    READY   STATUS    RESTARTS   AGE")


async def test_get_wide(kubelite: Kubelite, pods: None) -> None:
    """`-o wide` adds IP, NODE and NOMINATED NODE."""
    rows = _table((await kubelite("get", "po", "-o", "wide")).out)
    assert rows[0][-4:] == ["IP", "NODE", "NOMINATED", "NODE"]
    by_name = {r[0]: r for r in rows[1:]}
    assert by_name["web-2"][-3:] == ["<none>", "node-1", "<none>"]
    assert by_name["web-1"][-3:] == ["<none>", "<none>", "<none>"]


async def test_get_all_namespaces(kubelite: Kubelite, pods: None) -> None:
    """-A lists every namespace with a NAMESPACE column."""
    rows = _table((await kubelite("get", "pods", "-A")).out)
    assert rows[0][:2] == ["NAMESPACE", "NAME"]
    assert [(r[0], r[1]) for r in rows[1:]] == [("default", "db-1"), ("default", "web-1"), ("default", "web-2"),
                                                ("kube-system", "sys-1")]


SELECTIONS = [
    (("-l", "app=web"), ["pod/web-1", "pod/web-2"]),
    (("-l", "app=web,tier in (a,c),!canary"), ["pod/web-1"]),
    (("-l", "app!=web"), ["pod/db-1"]),
    (("--field-selector", "spec.nodeName=node-1"), ["pod/web-2"]),
    (("--field-selector", "metadata.name=db-1"), ["pod/db-1"]),
    (("--field-selector", "spec.nodeName="), ["pod/db-1", "pod/web-1"]),
    (("-n", "kube-system"), ["pod/sys-1"]),
]


async def test_get_selectors_and_names(kubelite: Kubelite, pods: None) -> None:
    """-l (equality and set-based), --field-selector and -n select; `-o name` prints kind/name."""
    results = await asyncio.gather(*(kubelite("get", "pods", *args, "-o", "name") for args, _ in SELECTIONS))
    for (args, names), result in zip(SELECTIONS, results, strict=True):
        assert result.code == 0, result.err
        assert result.out.splitlines() == names, args


async def test_get_yaml_and_json(kubelite: Kubelite, pods: None) -> None:
    """`-o yaml`/`-o json` print one object for one name and a List otherwise."""
    one_out, many_out, slash_out, empty_out = await asyncio.gather(
        kubelite("get", "pod", "web-1", "-o", "yaml"), kubelite("get", "pods", "-l", "app=web", "-o", "json"),
        kubelite("get", "pod/web-2", "-o", "yaml"), kubelite("get", "deploy", "-o", "json"))
    one = yaml.safe_load(one_out.out)
    assert (one["kind"], one["metadata"]["name"], one["metadata"]["labels"]) == ("Pod", "web-1",
                                                                                 {"app": "web", "tier": "a"})
    many = json.loads(many_out.out)
    assert many["kind"] == "List"
    assert [i["metadata"]["name"] for i in many["items"]] == ["web-1", "web-2"]
    slash = yaml.safe_load(slash_out.out)
    assert slash["spec"]["nodeName"] == "node-1"
    assert json.loads(empty_out.out) == {"apiVersion": "v1", "kind": "List", "items": []}


SHORT_NAMES = ["po", "svc", "deploy", "rs", "no", "ns", "ep", "pods", "Deployment", "leases"]


async def test_short_names(kubelite: Kubelite) -> None:
    """kubectl's short names (po, svc, deploy, rs, no, ns, ep) and other spellings work wherever a kind is expected."""
    results = await asyncio.gather(*(kubelite("get", name, "-o", "name") for name in SHORT_NAMES))
    for name, result in zip(SHORT_NAMES, results, strict=True):
        assert result.code == 0, (name, result.err)
    assert "namespace/kube-system" in results[SHORT_NAMES.index("ns")].out.splitlines()


async def test_get_several_kinds(kubelite: Kubelite, client: Client) -> None:
    """`get svc,deploy` prints a table per kind with kind-prefixed names."""
    await kubelite("apply", "-f", str(DOCS / "nginx-deployment.yaml"), "-f", str(DOCS / "my-service.yaml"))
    result = await kubelite("get", "svc,deploy")
    assert result.code == 0, result.err
    text = result.out
    assert "service/my-service" in text and "deployment.apps/nginx-deployment" in text
    assert "0/3" in text


async def test_get_errors(kubelite: Kubelite) -> None:
    """A missing object or an unknown kind is one line on stderr and exit 1."""
    missing, unknown, bad = await asyncio.gather(kubelite("get", "pod", "ghost"),
                                                 kubelite("get", "horizontalpodautoscalers"),
                                                 kubelite("get", "pods", "-l", "app in web"))
    assert (missing.code, missing.err_lines) == (1, ['Error from server (NotFound): pods "ghost" not found'])
    assert unknown.code == 1
    assert unknown.err_lines == ['error: the server doesn\'t have a resource type "horizontalpodautoscalers"; '
                                 f"supported: {kinds.SUPPORTED_TEXT}"]
    assert bad.code == 1 and len(bad.err_lines) == 1
    assert bad.err_lines[0].startswith("Error from server (Invalid): labelSelector: Invalid value: 'app in web'")


async def test_get_empty(kubelite: Kubelite) -> None:
    """An empty listing says so on stderr and exits 0."""
    result = await kubelite("get", "pods")
    assert (result.code, result.out, result.err_lines) == (0, "", ["No resources found in default namespace."])


async def test_get_watch(apiserver: RunningApiserver, cli_env: dict[str, str], client: Client) -> None:
    """`get pods -w` prints the current pods, then a row for each change."""
    await client.create(_pod("first"))
    proc = await asyncio.create_subprocess_exec(KUBELITE, "get", "pods", "-w", "--server", apiserver.address,
                                                env=cli_env, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    assert proc.stdout is not None
    try:
        header = await asyncio.wait_for(proc.stdout.readline(), 10)
        first = await asyncio.wait_for(proc.stdout.readline(), 10)
        assert header.split()[0] == b"NAME" and first.split()[0] == b"first"
        await client.create(_pod("second"))
        second = await asyncio.wait_for(proc.stdout.readline(), 10)
        assert second.split()[:3] == [b"second", b"0/1", b"Pending"]
        await client.bind("default", "second", "node-1")
        changed = await asyncio.wait_for(proc.stdout.readline(), 10)
        assert changed.split()[0] == b"second"
    finally:
        proc.terminate()
        await proc.wait()


async def test_describe(kubelite: Kubelite, client: Client) -> None:
    """`describe` shows a pod's, a service's and a deployment's essentials and their events."""
    await kubelite("apply", "-f", str(DOCS))
    await client.create(_obj({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "nginx.1"},
                              "involvedObject": {"kind": "Pod", "name": "nginx", "namespace": "default"},
                              "reason": "Scheduled", "message": "assigned default/nginx to node-1",
                              "type": "Normal", "source": {"component": "default-scheduler"}}))
    pod = await kubelite("describe", "pod", "nginx")
    assert pod.code == 0, pod.err
    lines = pod.out.splitlines()
    assert lines[0].split() == ["Name:", "nginx"]
    assert "Namespace:            default" in lines
    assert "Status:               Pending" in lines
    assert "    Image:            nginx:1.14.2" in lines
    assert "    Ports:            80/TCP" in lines
    assert lines[lines.index("Events:") + 1].split()[:3] == ["Type", "Reason", "Age"]
    assert "assigned default/nginx to node-1" in pod.out
    svc = await kubelite("describe", "svc", "my-service")
    assert "TargetPort:           9376/TCP" in svc.out.splitlines()
    assert "Events:               <none>" in svc.out.splitlines()
    dep = await kubelite("describe", "deployment/nginx-deployment")
    assert "Replicas:             3 desired | 0 updated | 0 total | 0 available | 0 unavailable" in dep.out
    assert "RollingUpdateStrategy: 25% max unavailable, 25% max surge" in dep.out.splitlines()
    missing = await kubelite("describe", "pod", "ghost")
    assert (missing.code, missing.err_lines) == (1, ['Error from server (NotFound): pods "ghost" not found'])


async def test_delete_by_file(kubelite: Kubelite, client: Client) -> None:
    """`delete -f FILE` deletes what the file describes."""
    await kubelite("apply", "-f", str(DOCS / "named-port-pod-and-service.yaml"))
    result = await kubelite("delete", "-f", str(DOCS / "named-port-pod-and-service.yaml"))
    assert result.code == 0, result.err
    assert sorted(result.out.splitlines()) == ["pod/nginx-named-port deleted", "service/nginx-service deleted"]
    assert await client.list_all("pods") == [] and await client.list_all("services") == []


async def test_delete_by_name_and_selector(kubelite: Kubelite, client: Client, pods: None) -> None:
    """`delete KIND NAME` and `delete KIND -l SEL` delete exactly those objects."""
    one = await kubelite("delete", "pod", "db-1")
    assert (one.code, one.out) == (0, "pod/db-1 deleted\n")
    sel = await kubelite("delete", "pods", "-l", "app=web", "--grace-period=0", "--force")
    assert sel.code == 0, sel.err
    assert sorted(sel.out.splitlines()) == ["pod/web-1 deleted", "pod/web-2 deleted"]
    assert [p.metadata.name for p in await client.list_all("pods")] == ["sys-1"]
    none = await kubelite("delete", "pods", "-l", "app=nothing")
    assert (none.code, none.err_lines) == (0, ["No resources found"])


async def test_delete_bound_pod_is_graceful(kubelite: Kubelite, client: Client, pods: None) -> None:
    """Deleting a bound pod marks it Terminating (its kubelet finishes the job); --grace-period=0 --force removes
    it at once."""
    result = await kubelite("delete", "pod", "web-2", "--no-wait")
    assert result.out == "pod/web-2 deleted\n"
    rows = {r[0]: r for r in _table((await kubelite("get", "pods")).out)[1:]}
    assert rows["web-2"][2] == "Terminating"
    forced = await kubelite("delete", "pod", "web-2", "--grace-period=0", "--force")
    assert forced.code == 0, forced.err
    assert "web-2" not in (await kubelite("get", "pods")).out


async def test_delete_missing(kubelite: Kubelite) -> None:
    """Deleting a missing object is an error unless --ignore-not-found."""
    missing, ignored, bare = await asyncio.gather(kubelite("delete", "pod", "ghost"),
                                                  kubelite("delete", "pod", "ghost", "--ignore-not-found"),
                                                  kubelite("delete", "pods"))
    assert (missing.code, missing.err_lines) == (1, ['Error from server (NotFound): pods "ghost" not found'])
    assert (ignored.code, ignored.err) == (0, "")
    assert bare.code == 1
    assert bare.err_lines == ["error: resource(s) were provided, but no name was specified (or use -l / --all)"]


async def test_create_namespace(kubelite: Kubelite, client: Client) -> None:
    """`create namespace` creates one; a second time is AlreadyExists, one line, exit 1."""
    result = await kubelite("create", "namespace", "team-a")
    assert (result.code, result.out) == (0, "namespace/team-a created\n")
    assert (await client.get("namespaces", "team-a")).status.phase == "Active"
    again = await kubelite("create", "namespace", "team-a")
    assert (again.code, again.err_lines) == (1, ['Error from server (AlreadyExists): namespaces "team-a" already '
                                                 "exists"])
    bad = await kubelite("create", "namespace", "Team_A")
    assert bad.code == 1 and bad.err_lines[0].startswith("Error from server (Invalid): Namespace \"Team_A\" is "
                                                         "invalid: metadata.name: Invalid value: 'Team_A'")


async def test_delete_namespace_terminates(kubelite: Kubelite, client: Client) -> None:
    """Deleting a namespace leaves it Terminating until its finalizers are done."""
    await kubelite("create", "namespace", "team-b")
    result = await kubelite("delete", "namespace", "team-b", "--no-wait")
    assert result.code == 0, result.err
    rows = {r[0]: r for r in _table((await kubelite("get", "ns")).out)[1:]}
    assert rows["team-b"][1] == "Terminating"


async def test_api_resources(kubelite: Kubelite) -> None:
    """`api-resources` lists every kind with short names, version and scope."""
    rows = _table((await kubelite("api-resources")).out)
    assert rows[0] == ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]
    assert ["pods", "po", "v1", "true", "Pod"] in rows
    assert ["deployments", "deploy", "apps/v1", "true", "Deployment"] in rows
    assert ["nodes", "no", "v1", "false", "Node"] in rows
    assert len(rows) == 1 + len(kinds.KINDS)


# ---------------------------------------------------------------- where the server address comes from


async def test_server_from_environment(apiserver: RunningApiserver, tmp_path: Path) -> None:
    """KUBELITE_SERVER names the apiserver when --server is not given."""
    env = {**clean_env(tmp_path), "KUBELITE_SERVER": apiserver.address}
    result = await run_kubelite("get", "ns", "-o", "name", env=env)
    assert result.code == 0, result.err
    assert "namespace/default" in result.out.splitlines()


async def test_server_from_config_file(apiserver: RunningApiserver, tmp_path: Path) -> None:
    """The current cluster of the config file (KUBELITE_CONFIG) names the apiserver."""
    config = tmp_path / "config.yaml"
    creds = {"certificate-authority": testpki.get().ca_file, "client-certificate": testpki.get().path("admin"),
             "client-key": testpki.get().path("admin", "key")}
    config.write_text(yaml.safe_dump({"current": "lab", "clusters": {
        "lab": {"server": apiserver.address, **creds}, "other": {"server": "127.0.0.1:1", **creds}}}))
    env = {**clean_env(tmp_path), "KUBELITE_CONFIG": str(config)}
    result = await run_kubelite("get", "ns", "-o", "name", env=env)
    assert result.code == 0, result.err
    chosen = await run_kubelite("get", "ns", "--cluster", "other", env=env)
    assert chosen.code == 1 and "127.0.0.1:1" in chosen.err


async def test_precedence_flag_env_file(apiserver: RunningApiserver, tmp_path: Path) -> None:
    """--server beats KUBELITE_SERVER, which beats the config file."""
    dead = f"127.0.0.1:{free_port()}"
    config = testpki.get().config_file(tmp_path / "config.yaml", dead, cluster="c")
    env = {**clean_env(tmp_path), "KUBELITE_CONFIG": str(config), "KUBELITE_SERVER": apiserver.address}
    assert (await run_kubelite("get", "ns", env=env)).code == 0
    env["KUBELITE_SERVER"] = dead
    assert (await run_kubelite("get", "ns", "--server", apiserver.address, env=env)).code == 0
    assert (await run_kubelite("get", "ns", env=env)).code == 1


async def test_server_before_the_verb(apiserver: RunningApiserver, tmp_path: Path) -> None:
    """`kubelite --server ADDR get ...` works as kubectl's does, and beats KUBELITE_SERVER."""
    env = {**clean_env(tmp_path), "KUBELITE_SERVER": f"127.0.0.1:{free_port()}"}
    result = await run_kubelite("--server", apiserver.address, "get", "ns", "-o", "name", env=env)
    assert result.code == 0, result.err
    assert "namespace/default" in result.out.splitlines()


DOWN = [("get", "pods"), ("describe", "pod", "x"), ("delete", "pod", "x"), ("apply", "-f", str(DOCS)),
        ("delete", "-f", str(DOCS)), ("create", "namespace", "x"), ("api-resources",)]


async def test_apiserver_down(tmp_path: Path) -> None:
    """With no apiserver listening, every verb (also apply and delete of many documents) prints one clear line and
    exits 1."""
    dead = f"127.0.0.1:{free_port()}"
    results = await asyncio.gather(*(run_kubelite(*args, "--server", dead, env=clean_env(tmp_path))
                                     for args in DOWN))
    for args, result in zip(DOWN, results, strict=True):
        assert result.code == 1, args
        assert len(result.err_lines) == 1, (args, result.err)
        assert result.err_lines[0].startswith(f"error: cannot reach the apiserver at {dead}: "), args
        assert "is the cluster up?" in result.err_lines[0]
        assert "Traceback" not in result.err and result.out == ""


def test_kubelite_is_next_to_the_interpreter() -> None:
    """The `kubelite` script these tests run is the one installed with this interpreter."""
    assert Path(KUBELITE).exists() and Path(KUBELITE).parent == Path(sys.executable).parent
