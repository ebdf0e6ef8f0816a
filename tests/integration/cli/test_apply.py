"""`kubelite apply`: refusals that write nothing, per-document failures, updates and bulk files."""

from __future__ import annotations

import asyncio
import json
import textwrap
from pathlib import Path

import pytest
import testpki
import yaml
from conftest import RunningApiserver, start_apiserver

from api import convert, kinds
from api.pb import core_pb2, rbac_pb2
from apiserver.server import REQUESTS
from client import pki
from client.api import Client

from .conftest import Kubelite, run_kubelite

POD = """\
apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  containers:
  - name: c
    image: nginx:1.25
"""


async def snapshot(client: Client) -> set[tuple[str, str, str]]:
    """Every object in the cluster, as (kind, namespace, name)."""
    out = set()
    for kind in kinds.KINDS:
        for obj in await client.list_all(kind.resource):
            out.add((kind.kind, obj.metadata.namespace, obj.metadata.name))
    return out


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


@pytest.mark.parametrize(("kind", "api_version"), [
    pytest.param("HorizontalPodAutoscaler", "autoscaling/v2", id="hpa"),
    pytest.param("CustomResourceDefinition", "apiextensions.k8s.io/v1", id="crd"),
    pytest.param("LimitRange", "v1", id="limitrange"),
    pytest.param("ValidatingWebhookConfiguration", "admissionregistration.k8s.io/v1", id="webhook"),
])
async def test_unsupported_kinds_are_refused(kubelite: Kubelite, client: Client, tmp_path: Path, kind: str,
                                             api_version: str) -> None:
    """A kind outside kubelite's scope is refused naming it and the supported kinds; nothing else in the file is
    applied."""
    path = tmp_path / "mixed.yaml"
    path.write_text(POD.format(name="fine") + f"---\napiVersion: {api_version}\nkind: {kind}\nmetadata:\n  name: x\n")
    before = await snapshot(client)
    result = await kubelite("apply", "-f", str(path))
    assert result.code == 1
    assert result.err_lines[0] == (f'error: {path} (document 2): kind "{kind}" is not supported; supported kinds: '
                                   f"{kinds.SUPPORTED_TEXT}")
    assert result.err_lines[-1] == "error: 1 of 2 documents are invalid; nothing was applied"
    assert result.out == ""
    assert await snapshot(client) == before


@pytest.mark.parametrize(("text", "line"), [
    pytest.param(POD.format(name="ok") + "---\n" + "apiVersion: v1\nkind: Pod\nmetadata:\n  name: [\n",
                 "{path} (document 2): line 14: malformed YAML: did not find expected node content",
                 id="unclosed-bracket"),
    pytest.param("apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n labels: {}\n",
                 "{path} (document 1): line 5: malformed YAML: did not find expected key", id="bad-indentation"),
    pytest.param(POD.format(name="p") + "    imagePolicy: Always\n",
                 "{path} (document 1): spec.containers[0].imagePolicy: unknown field: known fields: args, command, "
                 "env, envFrom, image, imagePullPolicy,", id="unknown-field"),
    pytest.param(POD.format(name="p") + "    ports:\n    - containerPort: 70000\n",
                 '{path} (document 1): Pod "p" is invalid: spec.containers[0].ports[0].containerPort: Invalid value: '
                 "70000: must be between 1 and 65535, inclusive", id="invalid-value"),
    pytest.param(POD.format(name="p") + "    ports:\n    - containerPort: http\n",
                 "{path} (document 1): spec.containers[0].ports[0].containerPort: Invalid value: 'http': expected "
                 "integer, got string", id="wrong-type"),
    pytest.param("apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n  - name: c\n",
                 '{path} (document 1): Pod "p" is invalid: spec.containers[0].image: Required value',
                 id="missing-image"),
    pytest.param("apiVersion: v1\nkind: Pod\nmetadata:\n  labels: {a: b}\nspec: {}\n",
                 "{path} (document 1): metadata.name: Required value", id="missing-name"),
    pytest.param("kind: Pod\nmetadata:\n  name: p\n", "{path} (document 1): apiVersion: Required value",
                 id="missing-api-version"),
    pytest.param("- just\n- a list\n", "{path} (document 1): expected a mapping with apiVersion and kind, got array",
                 id="not-a-mapping"),
    pytest.param("apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  labels: " + "[" * 3000 + "]" * 3000 + "\n",
                 "{path} (document 1): line 5: ", id="deeply-nested"),
    pytest.param("apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  labels: " + "[" * 500_000 + "]" * 500_000,
                 "{path} (document 1): line 5: ", id="absurdly-nested"),
    pytest.param("apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  labels: " + "[" * 60 + "]" * 60 + "\n",
                 "{path} (document 1): metadata.labels: Invalid value: expected object, got array",
                 id="nested-but-parseable"),
])
async def test_bad_files_write_nothing(kubelite: Kubelite, client: Client, tmp_path: Path, text: str,
                                       line: str) -> None:
    """Malformed YAML, unknown fields and invalid values give one clear line naming the file, document and field;
    the exit status is non-zero and the server has no new objects."""
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    before = await snapshot(client)
    result = await kubelite("apply", "-f", str(path))
    assert result.code == 1
    problems = [x for x in result.err_lines if not x.endswith("nothing was applied")]
    assert len(problems) == 1, result.err
    assert problems[0].startswith("error: " + line.format(path=path)), problems[0]
    assert "Traceback" not in result.err
    assert result.out == ""
    assert await snapshot(client) == before


async def test_every_bad_document_is_reported(kubelite: Kubelite, client: Client, tmp_path: Path) -> None:
    """Each invalid document of a file gets its own line; the count says how many of how many."""
    path = tmp_path / "several.yaml"
    path.write_text(POD.format(name="good") + "---\n" + POD.format(name="Bad") + "---\n"
                    + POD.format(name="also-good") + "---\napiVersion: v1\nkind: ResourceQuota\nmetadata: {name: s}\n")
    before = await snapshot(client)
    result = await kubelite("apply", "-f", str(path))
    assert result.code == 1
    assert result.err_lines[0].startswith(f"error: {path} (document 2): Pod \"Bad\" is invalid: metadata.name:")
    assert result.err_lines[1].startswith(f"error: {path} (document 4): kind \"ResourceQuota\" is not supported")
    assert result.err_lines[2] == "error: 2 of 4 documents are invalid; nothing was applied"
    assert await snapshot(client) == before


async def test_missing_file(kubelite: Kubelite) -> None:
    """A path that does not exist is one line and exit 1."""
    result = await kubelite("apply", "-f", "/nonexistent/x.yaml")
    assert (result.code, result.err_lines) == (1, ['error: the path "/nonexistent/x.yaml" does not exist'])


async def test_many_documents_report_each_server_failure(kubelite: Kubelite, client: Client, tmp_path: Path) -> None:
    """A file of hundreds of documents goes to the server concurrently; each server-side failure (a missing
    namespace) is reported with its document, and every other document is created."""
    docs = []
    for i in range(300):
        doc = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"p{i:03d}", "labels": {"batch": "big"}},
               "spec": {"containers": [{"name": "c", "image": "nginx:1.25"}]}}
        if i % 50 == 7:
            doc["metadata"]["namespace"] = f"missing-{i}"
        docs.append(doc)
    path = tmp_path / "big.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    result = await kubelite("apply", "-f", str(path))
    assert result.code == 1
    failing = [i for i in range(300) if i % 50 == 7]
    assert sorted(result.err_lines) == sorted(
        f'error: {path} (document {i + 1}): pod/p{i:03d}: namespaces "missing-{i}" not found' for i in failing)
    assert len(result.out.splitlines()) == 300 - len(failing)
    created = await client.list_all("pods", "default", label_selector="batch=big")
    assert sorted(p.metadata.name for p in created) == [f"p{i:03d}" for i in range(300) if i not in failing]


async def test_namespace_documents_go_first(kubelite: Kubelite, client: Client, tmp_path: Path) -> None:
    """A file that creates a namespace and objects in it works in one apply, whatever the document order."""
    path = tmp_path / "ns.yaml"
    pod = yaml.safe_load(POD.format(name="p"))
    pod["metadata"]["namespace"] = "team"
    path.write_text(yaml.safe_dump_all([pod, {"apiVersion": "v1", "kind": "Namespace",
                                              "metadata": {"name": "team"}}]))
    result = await kubelite("apply", "-f", str(path))
    assert result.code == 0, result.err
    assert (await client.get("pods", "p", "team")).metadata.namespace == "team"


async def test_apply_updates_with_a_three_way_merge(kubelite: Kubelite, client: Client, tmp_path: Path) -> None:
    """Re-applying: an unchanged file is `unchanged`; a changed one is `configured`; fields dropped from the file go,
    fields others set stay."""
    dep = {"apiVersion": "apps/v1", "kind": "Deployment",
           "metadata": {"name": "web", "labels": {"app": "web", "team": "a"}},
           "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                    "template": {"metadata": {"labels": {"app": "web"}},
                                 "spec": {"containers": [{"name": "c", "image": "nginx:1.25"}]}}}}
    path = tmp_path / "dep.yaml"
    path.write_text(yaml.safe_dump(dep))
    assert (await kubelite("apply", "-f", str(path))).out == "deployment.apps/web created\n"
    assert (await kubelite("apply", "-f", str(path))).out == "deployment.apps/web unchanged\n"
    live = await client.get("deployments", "web", "default")
    live.metadata.labels["added-by"] = "someone-else"
    await client.update(live)
    del dep["metadata"]["labels"]["team"]
    dep["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:1.26"
    path.write_text(yaml.safe_dump(dep))
    assert (await kubelite("apply", "-f", str(path))).out == "deployment.apps/web configured\n"
    after = await client.get("deployments", "web", "default")
    assert dict(after.metadata.labels) == {"app": "web", "added-by": "someone-else"}
    assert after.spec.template.spec.containers[0].image == "nginx:1.26"
    assert after.metadata.generation == 2
    recorded = json.loads(after.metadata.annotations["kubectl.kubernetes.io/last-applied-configuration"])
    assert recorded == dep


async def test_apply_from_stdin_with_namespace(kubelite: Kubelite, client: Client) -> None:
    """`-f -` reads stdin; `-n` places objects that name no namespace, and a conflicting one is refused."""
    await client.create(kinds.unwrap(convert.manifest_to_object(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}})))
    result = await kubelite("apply", "-f", "-", "-n", "team", stdin=POD.format(name="from-stdin"))
    assert result.code == 0, result.err
    assert (await client.get("pods", "from-stdin", "team")).metadata.namespace == "team"
    other = yaml.safe_load(POD.format(name="x"))
    other["metadata"]["namespace"] = "default"
    result = await kubelite("apply", "-f", "-", "-n", "team", stdin=yaml.safe_dump(other))
    assert result.code == 1
    assert result.err_lines[0] == ('error: - (document 1): the namespace from the provided object "default" does not '
                                   'match the namespace "team"')


async def test_dry_runs_write_nothing(kubelite: Kubelite, client: Client, tmp_path: Path) -> None:
    """--dry-run=client and --dry-run=server report what would happen and store nothing."""
    path = _write(tmp_path, "p.yaml", POD.format(name="p"))
    before = await snapshot(client)
    client_side = await kubelite("apply", "-f", str(path), "--dry-run=client")
    server_side = await kubelite("apply", "-f", str(path), "--dry-run=server")
    assert client_side.out == "pod/p configured (dry run)\n"
    assert server_side.out == "pod/p created (server dry run)\n"
    assert await snapshot(client) == before


async def test_output_name(kubelite: Kubelite, tmp_path: Path) -> None:
    """`-o name` prints kind/name per object."""
    path = _write(tmp_path, "p.yaml", POD.format(name="p"))
    assert (await kubelite("apply", "-f", str(path), "-o", "name")).out == "pod/p\n"


async def test_apply_recursive_directory(kubelite: Kubelite, client: Client, tmp_path: Path) -> None:
    """-R applies the .yaml/.yml/.json files of a directory tree; other files are ignored."""
    (tmp_path / "sub").mkdir()
    _write(tmp_path, "a.yaml", POD.format(name="a"))
    _write(tmp_path, "sub/b.yml", POD.format(name="b"))
    (tmp_path / "sub" / "c.json").write_text(json.dumps(yaml.safe_load(POD.format(name="c"))))
    _write(tmp_path, "notes.txt", "not a manifest")
    result = await kubelite("apply", "-R", "-f", str(tmp_path))
    assert result.code == 0, result.err
    assert sorted(p.metadata.name for p in await client.list_all("pods", "default")) == ["a", "b", "c"]


async def test_concurrent_applies_of_the_same_file(kubelite: Kubelite, client: Client, tmp_path: Path) -> None:
    """Several applies of the same file at once all succeed and leave one object."""
    path = _write(tmp_path, "p.yaml", POD.format(name="p"))
    results = await asyncio.gather(*(kubelite("apply", "-f", str(path)) for _ in range(4)))
    assert all(r.code == 0 for r in results), [r.err for r in results]
    assert sorted(r.out.split()[-1] for r in results).count("created") == 1
    assert [p.metadata.name for p in await client.list_all("pods", "default")] == ["p"]


def _bulk(tmp_path: Path, name: str, pods: int, *, namespace: str = "", label: str = "v1") -> Path:
    """A file of a namespace (when given) and `pods` pods in it, one of them in a namespace that does not exist."""
    docs: list[dict] = []
    if namespace:
        docs.append({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    for i in range(pods):
        meta = {"name": f"p{i:03d}", "labels": {"v": label}, **({"namespace": namespace} if namespace else {})}
        if i == 5:
            meta["namespace"] = "missing"
        docs.append({"apiVersion": "v1", "kind": "Pod", "metadata": meta,
                     "spec": {"containers": [{"name": "c", "image": "nginx:1.25"}]}})
    path = tmp_path / name
    path.write_text(yaml.safe_dump_all(docs))
    return path


async def test_bulk_apply_output_is_the_same_from_a_server_without_create_many(
        kubelite: Kubelite, client: Client, etcd: str, cli_env: dict[str, str], tmp_path: Path) -> None:
    """A server without CreateMany (the test-only switch) gets one Create per object, and the user sees the same
    lines, errors and exit code as from a server with it (which got the pods in three CreateMany calls)."""
    old = await start_apiserver(etcd, batch_calls=False)
    batches = REQUESTS.labels("create_many", "", "OK")
    try:
        for server, ns in ((old.address, "via-create"), (None, "via-create-many")):
            path = _bulk(tmp_path, f"{ns}.yaml", 600, namespace=ns)
            args = ("apply", "-f", str(path), "--server", server) if server else ("apply", "-f", str(path))
            before = batches._value.get()
            result = await (run_kubelite(*args, env=cli_env) if server else kubelite(*args))
            assert batches._value.get() - before == (0 if server else 3)
            assert result.code == 1
            assert result.err_lines == [f'error: {path} (document 7): pod/p005: namespaces "missing" not found']
            assert sorted(result.out.splitlines()) == sorted(
                [f"namespace/{ns} created", *(f"pod/p{i:03d} created" for i in range(600) if i != 5)])
            assert len(await client.list_all("pods", ns)) == 599
    finally:
        await old.stop()


async def test_bulk_reapply_updates_only_what_changed(kubelite: Kubelite, client: Client, tmp_path: Path) -> None:
    """Applying a bulk file again answers AlreadyExists per object from CreateMany, and each object is then merged
    on its own: the unchanged ones say so, the edited one is configured."""
    path = _bulk(tmp_path, "bulk.yaml", 300)
    await kubelite("apply", "-f", str(path))
    docs = list(yaml.safe_load_all(path.read_text()))
    docs[0]["metadata"]["labels"]["v"] = "v2"
    path.write_text(yaml.safe_dump_all(docs))
    result = await kubelite("apply", "-f", str(path))
    assert result.code == 1
    lines = result.out.splitlines()
    assert sorted(lines) == sorted(["pod/p000 configured", *(f"pod/p{i:03d} unchanged" for i in range(1, 300)
                                                              if i != 5)])
    assert (await client.get("pods", "p000", "default")).metadata.labels["v"] == "v2"


async def test_bulk_apply_is_authorized_per_object(apiserver: RunningApiserver, client: Client,
                                                   tmp_path: Path) -> None:
    """A user who may create pods in one namespace only: the file's pods there are created, each of the others is
    reported forbidden on its own line, and the command fails."""
    for ns in ("team-a", "team-b"):
        await client.create(convert.from_dict(core_pb2.Namespace, {"metadata": {"name": ns}}))
    await client.create(convert.from_dict(rbac_pb2.Role, {
        "metadata": {"name": "pod-maker", "namespace": "team-a"},
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["create", "get", "update"]}]}))
    await client.create(convert.from_dict(rbac_pb2.RoleBinding, {
        "metadata": {"name": "maker", "namespace": "team-a"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pod-maker"},
        "subjects": [{"kind": "User", "name": "maker", "apiGroup": "rbac.authorization.k8s.io"}]}))
    if not (testpki.get().dir / "users/maker.crt").exists():
        testpki.get().issue("users/maker", pki.Request(pki.Identity("maker", ())))
    config = testpki.get().config_file(tmp_path / "maker.yaml", apiserver.address, identity="users/maker")
    docs = [{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"p{i}", "namespace": f"team-{'ab'[i % 2]}"},
             "spec": {"containers": [{"name": "c", "image": "nginx:1.25"}]}} for i in range(6)]
    path = tmp_path / "teams.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    result = await run_kubelite("apply", "-f", str(path), env={"HOME": str(tmp_path), "KUBELITE_CONFIG": str(config)})
    assert result.code == 1
    assert sorted(result.out.splitlines()) == ["pod/p0 created", "pod/p2 created", "pod/p4 created"]
    assert sorted(result.err_lines) == [
        f'error: {path} (document {i + 1}): pod/p{i}: pods "p{i}" is forbidden: User "maker" cannot create resource '
        f'"pods" in API group "" in the namespace "team-b"' for i in (1, 3, 5)]
    assert await client.list_all("pods", "team-b") == []
