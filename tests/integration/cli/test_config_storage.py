"""ConfigMaps, Secrets and volumes through the CLI against a real apiserver and etcd: the Kubernetes documentation's
manifests, `create configmap|secret`, Secrets' output, and encryption at rest as etcd holds it."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest
import yaml
from aetcd import rpc
from conftest import etcd_connection, start_apiserver

from apiserver import encryption

from .conftest import DOCS, Kubelite, clean_env, run_kubelite
from .test_docs_manifests import assert_contains

STORAGE_DOCS = DOCS / "config-and-storage"
# Apply order: what pods refer to first.
ORDER = ["configmap-multikeys", "secret", "mysecret", "pv-volume", "pv-claim", "pod-configmap-volume", "secret-pod",
         "secret-env-pod", "pv-pod"]


def _doc(stem: str) -> dict:
    return yaml.safe_load((STORAGE_DOCS / f"{stem}.yaml").read_text())


async def _etcd_value(url: str, key: str) -> bytes:
    raw = etcd_connection(url)  # over mutual TLS, as the apiserver reaches it
    try:
        got = await raw.kvstub.Range(rpc.RangeRequest(key=key.encode()), timeout=10)
    finally:
        await raw.close()
    assert got.kvs, key
    return got.kvs[0].value


def test_the_documentation_manifests_are_here() -> None:
    """The ConfigMap, Secret and PersistentVolume examples are kept as the documentation has them."""
    assert {p.stem for p in STORAGE_DOCS.glob("*.yaml")} == {*ORDER, "pod-configmap-envFrom"}
    assert _doc("secret")["data"]["username"] == "bXktYXBw"
    assert _doc("pv-volume")["spec"]["hostPath"]["path"] == "/mnt/data"


@pytest.mark.parametrize("stem", [*ORDER, "pod-configmap-envFrom"])
async def test_documentation_manifest_applies_and_reads_back(kubelite: Kubelite, stem: str) -> None:
    """Each manifest applies unchanged (after what it refers to) and reads back with every field it sets."""
    before = ORDER[:ORDER.index(stem)] if stem in ORDER else ORDER[:1]
    for dep in before:
        if not dep.startswith("pod-") and not dep.endswith("-pod"):
            assert (await kubelite("apply", "-f", str(STORAGE_DOCS / f"{dep}.yaml"))).code == 0
    result = await kubelite("apply", "-f", str(STORAGE_DOCS / f"{stem}.yaml"))
    assert result.code == 0, result.err
    doc = _doc(stem)
    resource = {"ConfigMap": "configmaps", "Secret": "secrets", "PersistentVolume": "pv",
                "PersistentVolumeClaim": "pvc", "Pod": "pods"}[doc["kind"]]
    got = await kubelite("get", resource, doc["metadata"]["name"], "-o", "yaml")
    assert got.code == 0, got.err
    assert_contains(yaml.safe_load(got.out), doc)


async def test_secret_output_is_base64_and_describe_shows_sizes(kubelite: Kubelite) -> None:
    """`get secret -o yaml` prints data in base64 as kubectl does; `describe secret` prints sizes, never values."""
    assert (await kubelite("apply", "-f", str(STORAGE_DOCS / "secret.yaml"))).code == 0
    out = yaml.safe_load((await kubelite("get", "secret", "test-secret", "-o", "yaml")).out)
    assert out["data"] == {"password": "Mzk1MjgkdmRnN0pi", "username": "bXktYXBw"}
    assert out["type"] == "Opaque"
    described = (await kubelite("describe", "secret", "test-secret")).out
    assert "password:  12 bytes" in described and "username:  6 bytes" in described
    assert "my-app" not in described and "39528$vdg7Jb" not in described
    table = (await kubelite("get", "secrets")).out.splitlines()
    assert table[0].split() == ["NAME", "TYPE", "DATA", "AGE"] and table[1].split()[:3] == ["test-secret", "Opaque",
                                                                                             "2"]


async def test_string_data_merges_and_immutable_refuses_changes(kubelite: Kubelite, tmp_path: Path) -> None:
    """stringData is merged into data on write (its keys win) and never stored; an immutable Secret refuses a
    changed value, naming the field."""
    path = tmp_path / "s.yaml"
    path.write_text("apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nimmutable: true\n"
                    "data: {a: YQ==, b: Yg==}\nstringData: {b: from-string}\n")
    assert (await kubelite("apply", "-f", str(path))).code == 0, path
    got = json.loads((await kubelite("get", "secret", "s", "-o", "json")).out)
    assert got["data"] == {"a": "YQ==", "b": base64.b64encode(b"from-string").decode()}
    assert "stringData" not in got
    path.write_text("apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nimmutable: true\ndata: {a: Yg==}\n")
    changed = await kubelite("apply", "-f", str(path))
    assert changed.code == 1 and "data: Forbidden: field is immutable when `immutable` is set" in changed.err


async def test_create_configmap_and_secrets_with_kubectls_flags(kubelite: Kubelite, tmp_path: Path) -> None:
    """`create configmap` takes --from-literal, --from-file (file, key=file, directory) and --from-env-file;
    `create secret generic|tls|docker-registry` make the types kubectl makes."""
    (tmp_path / "game.properties").write_text("enemies=aliens\n")
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "a.txt").write_text("A")
    (tmp_path / "blob").write_bytes(b"\xff\x00")
    (tmp_path / "env").write_text("# comment\nX=1\nY=two\n")
    r = await kubelite("create", "configmap", "game", "--from-literal", "k=v", "--from-file",
                       str(tmp_path / "game.properties"), "--from-file", f"renamed={tmp_path / 'blob'}",
                       "--from-file", str(tmp_path / "dir"), "--from-env-file", str(tmp_path / "env"))
    assert r.code == 0 and r.out.strip() == "configmap/game created", r.err
    cm = json.loads((await kubelite("get", "cm", "game", "-o", "json")).out)
    assert cm["data"] == {"k": "v", "game.properties": "enemies=aliens\n", "a.txt": "A", "X": "1", "Y": "two"}
    assert cm["binaryData"] == {"renamed": base64.b64encode(b"\xff\x00").decode()}
    dup = await kubelite("create", "configmap", "dup", "--from-literal", "k=1", "--from-literal", "k=2")
    assert dup.code == 1 and "another key by that name already exists" in dup.err
    r = await kubelite("create", "secret", "generic", "db", "--from-literal", "password=s3cr3t", "--type", "Opaque")
    assert r.code == 0 and r.out.strip() == "secret/db created", r.err
    got = json.loads((await kubelite("get", "secret", "db", "-o", "json")).out)
    assert got["data"] == {"password": base64.b64encode(b"s3cr3t").decode()}
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    cert.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    key.write_text("-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n")
    assert (await kubelite("create", "secret", "tls", "web-tls", "--cert", str(cert), "--key", str(key))).code == 0
    tls = json.loads((await kubelite("get", "secret", "web-tls", "-o", "json")).out)
    assert tls["type"] == "kubernetes.io/tls" and set(tls["data"]) == {"tls.crt", "tls.key"}
    r = await kubelite("create", "secret", "docker-registry", "reg", "--docker-server", "registry.example:5000",
                       "--docker-username", "u", "--docker-password", "p", "--docker-email", "u@example.org")
    assert r.code == 0, r.err
    reg = json.loads((await kubelite("get", "secret", "reg", "-o", "json")).out)
    assert reg["type"] == "kubernetes.io/dockerconfigjson"
    auths = json.loads(base64.b64decode(reg["data"][".dockerconfigjson"]))["auths"]
    assert auths["registry.example:5000"]["auth"] == base64.b64encode(b"u:p").decode()


async def test_etcd_holds_only_ciphertext_and_rotate_key_rewrites_every_secret(kubelite: Kubelite, apiserver,
                                                                              etcd: str) -> None:
    """A Secret's value in etcd carries the aesgcm prefix and no clear text; after `secrets rotate-key` every
    Secret is stored under the new key and still reads back the same."""
    assert (await kubelite("create", "secret", "generic", "one", "--from-literal", "token=clear-text-one")).code == 0
    assert (await kubelite("create", "secret", "generic", "two", "-n", "kube-system", "--from-literal",
                           "token=clear-text-two")).code == 0
    raw = await _etcd_value(etcd, "/registry/secrets/default/one")
    assert raw.startswith(b"k8s:enc:aesgcm:v1:key1:") and b"clear-text-one" not in raw
    config = apiserver.server.config.encryption_config
    rotated = await kubelite("secrets", "rotate-key", "--encryption-config", config)
    assert rotated.code == 0, rotated.err
    assert "key2" in rotated.out and "2 secret(s) rewritten" in rotated.out
    for key, text in (("/registry/secrets/default/one", b"clear-text-one"),
                      ("/registry/secrets/kube-system/two", b"clear-text-two")):
        raw = await _etcd_value(etcd, key)
        assert raw.startswith(b"k8s:enc:aesgcm:v1:key2:") and text not in raw
    got = json.loads((await kubelite("get", "secret", "two", "-n", "kube-system", "-o", "json")).out)
    assert base64.b64decode(got["data"]["token"]) == b"clear-text-two"
    keys = encryption.load(config).transformer("secrets").providers[0].keys
    assert [k.name for k in keys] == ["key2", "key1"]
    assert os.stat(config).st_mode & 0o777 == 0o600


async def test_an_apiserver_without_a_key_refuses_secrets(etcd: str, tmp_path: Path) -> None:
    """With no encryption config the apiserver stores no Secret (rather than keep it in clear text) and says why;
    other kinds are served as usual."""
    server = await start_apiserver(etcd, encryption_config="")
    try:
        env = clean_env(tmp_path)
        r = await run_kubelite("create", "secret", "generic", "s", "--from-literal", "a=b", "--server",
                               server.address, env=env)
        assert r.code == 1
        assert "secrets are not stored: this apiserver has no --encryption-provider-config" in r.err
        ok = await run_kubelite("create", "configmap", "c", "--from-literal", "a=b", "--server", server.address,
                                env=env)
        assert ok.code == 0, ok.err
    finally:
        await server.stop()


def test_a_config_file_is_made_once_and_only_its_owner_reads_it(tmp_path: Path) -> None:
    """ensure_file writes one aesgcm key (0600) the first time and leaves an existing file alone."""
    path = tmp_path / "enc.yaml"
    assert encryption.ensure_file(path) is True
    first = path.read_text()
    assert encryption.ensure_file(path) is False and path.read_text() == first
    assert path.stat().st_mode & 0o777 == 0o600
    assert encryption.load(path).transformer("secrets").writer == "aesgcm:key1"


async def test_get_and_describe_volumes_claims_and_classes(kubelite: Kubelite) -> None:
    """`get pv,pvc,sc` print kubectl's columns; describe shows a volume's source and a class's binding mode; a claim
    gets pvc-protection and a volume pv-protection from the start."""
    for stem in ("pv-volume", "pv-claim"):
        assert (await kubelite("apply", "-f", str(STORAGE_DOCS / f"{stem}.yaml"))).code == 0
    sc = DOCS.parent.parent.parent / "deploy" / "addons" / "local-path-storageclass.yaml"
    assert (await kubelite("apply", "-f", str(sc))).code == 0
    pv = (await kubelite("get", "pv")).out.splitlines()
    assert pv[0].split()[:4] == ["NAME", "CAPACITY", "ACCESS", "MODES"]
    assert pv[1].split()[:4] == ["task-pv-volume", "10Gi", "RWO", "Retain"]
    assert (await kubelite("get", "sc")).out.splitlines()[1].split()[:4] == [
        "local-path", "(default)", "kubelite.io/local-path", "Delete"]
    described = (await kubelite("describe", "pv", "task-pv-volume")).out
    assert "HostPath (bare host directory volume)" in described and "/mnt/data" in described
    assert "kubernetes.io/pv-protection" in described
    claim = (await kubelite("describe", "pvc", "task-pv-claim")).out
    assert "StorageClass:" in claim and "manual" in claim and "kubernetes.io/pvc-protection" in claim
    assert "VolumeBindingMode:    WaitForFirstConsumer" in (await kubelite("describe", "sc", "local-path")).out


async def test_a_claim_without_a_class_gets_the_default_one(kubelite: Kubelite, tmp_path: Path) -> None:
    """With a default StorageClass, a claim that names none gets it; `storageClassName: ""` asks for none."""
    sc = DOCS.parent.parent.parent / "deploy" / "addons" / "local-path-storageclass.yaml"
    assert (await kubelite("apply", "-f", str(sc))).code == 0
    path = tmp_path / "claims.yaml"
    path.write_text("apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: a}\nspec: {accessModes: "
                    "[ReadWriteOnce], resources: {requests: {storage: 1Gi}}}\n---\napiVersion: v1\nkind: "
                    "PersistentVolumeClaim\nmetadata: {name: b}\nspec: {storageClassName: '', accessModes: "
                    "[ReadWriteOnce], resources: {requests: {storage: 1Gi}}}\n")
    assert (await kubelite("apply", "-f", str(path))).code == 0
    a = json.loads((await kubelite("get", "pvc", "a", "-o", "json")).out)
    b = json.loads((await kubelite("get", "pvc", "b", "-o", "json")).out)
    assert a["spec"]["storageClassName"] == "local-path"
    assert b["spec"]["storageClassName"] == ""
