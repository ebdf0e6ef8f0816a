"""ConfigMaps, Secrets and persistent volumes on a 3-node lab, driven through the CLI as a user would.

The documentation's manifests apply unchanged, pods included: the images they name (nginx, redis,
registry.k8s.io/busybox) are pulled from the lab's registry, which serves busybox stand-ins for them.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from deploy.lab.cluster import control_plane_spec, node_dir

from .lab import Lab, wait_until

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "tests" / "data" / "k8s-docs" / "config-and-storage"
IMAGE = "localhost:5000/kubelite/busybox:1.35"


def _pod(lab: Lab, name: str) -> dict[str, Any] | None:
    r = lab.kubelite("get", "pod", name, "-o", "json", check=False)
    return None if r.returncode else yaml.safe_load(r.stdout)


def _phase(lab: Lab, name: str) -> str:
    pod = _pod(lab, name)
    return pod["status"].get("phase", "") if pod else ""


def _running(lab: Lab, name: str) -> bool:
    pod = _pod(lab, name)
    return bool(pod) and pod["status"].get("phase") == "Running" and all(
        cs.get("ready") for cs in pod["status"].get("containerStatuses", [{}]))


def _waiting(lab: Lab, name: str) -> tuple[str, str]:
    pod = _pod(lab, name) or {}
    for cs in pod.get("status", {}).get("containerStatuses", []):
        w = cs.get("state", {}).get("waiting")
        if w:
            return w.get("reason", ""), w.get("message", "")
    return "", ""


def _delete(lab: Lab, *args: str) -> None:
    lab.kubelite("delete", *args, "--ignore-not-found", "--no-wait", check=False, timeout=60)


def _gone(lab: Lab, kind: str, name: str) -> bool:
    return lab.kubelite("get", kind, name, check=False).returncode != 0


def test_documentation_configmap_pods_read_the_configmap(lab: Lab) -> None:
    """The ConfigMap applies unchanged; the volume pod lists its keys as files, the envFrom pod prints them."""
    lab.kubelite("apply", "-f", str(DOCS / "configmap-multikeys.yaml"))
    try:
        lab.kubelite("apply", "-f", str(DOCS / "pod-configmap-volume.yaml"))
        wait_until(lambda: _phase(lab, "dapi-test-pod") == "Succeeded", timeout=90, what="volume pod done")
        out = lab.kubelite("logs", "dapi-test-pod").stdout.split()
        assert out == ["SPECIAL_LEVEL", "SPECIAL_TYPE"], out
        lab.kubelite("delete", "pod", "dapi-test-pod", timeout=90)
        lab.kubelite("apply", "-f", str(DOCS / "pod-configmap-envFrom.yaml"))
        wait_until(lambda: _phase(lab, "dapi-test-pod") == "Succeeded", timeout=90, what="envFrom pod done")
        env = lab.kubelite("logs", "dapi-test-pod").stdout.splitlines()
        assert "SPECIAL_LEVEL=very" in env and "SPECIAL_TYPE=charm" in env, env
    finally:
        _delete(lab, "pod", "dapi-test-pod")
        _delete(lab, "configmap", "special-config")


def test_documentation_secret_pods_on_tmpfs_and_in_env(lab: Lab) -> None:
    """The Secrets apply unchanged; the volume pod reads them from files on a tmpfs (never the node's disk),
    the env pod gets them as variables."""
    lab.kubelite("apply", "-f", str(DOCS / "secret.yaml"), "-f", str(DOCS / "mysecret.yaml"))
    try:
        lab.kubelite("apply", "-f", str(DOCS / "secret-pod.yaml"), "-f", str(DOCS / "secret-env-pod.yaml"))
        wait_until(lambda: _running(lab, "secret-test-pod") and _running(lab, "secret-env-pod"), timeout=90,
                   what="secret pods running")
        r = lab.exec_in("secret-test-pod", "cat /etc/secret-volume/username; echo; cat /etc/secret-volume/password")
        assert r.stdout.split() == ["my-app", "39528$vdg7Jb"], r
        mounts = lab.exec_in("secret-test-pod", "grep ' /etc/secret-volume ' /proc/mounts").stdout
        assert mounts.split()[2] == "tmpfs", mounts
        env = lab.exec_in("secret-env-pod", "echo $SECRET_USERNAME $SECRET_PASSWORD").stdout.split()
        assert env == ["admin", "1f2d1e2e67df"], env
        pod = _pod(lab, "secret-test-pod")
        assert pod is not None
        uid, node = pod["metadata"]["uid"], pod["spec"]["nodeName"]
        host = node_dir(lab.plan, node) / "kubelet" / "pods" / uid / "volumes" / "kubernetes.io~secret"
        info = Path("/proc/self/mountinfo").read_text()
        assert any(line.split()[4] == str(host / "secret-volume") and " - tmpfs " in line
                   for line in info.splitlines()), f"no tmpfs at {host}"
    finally:
        _delete(lab, "pod", "secret-test-pod", "secret-env-pod")
        _delete(lab, "secret", "test-secret", "mysecret")


def test_documentation_persistent_volume_task(lab: Lab) -> None:
    """pv-volume and pv-claim bind; pv-pod's web server serves the index.html written into /mnt/data."""
    made = not os.path.exists("/mnt/data")
    Path("/mnt/data").mkdir(parents=True, exist_ok=True)
    index = Path("/mnt/data/index.html")
    had_index = index.exists()
    if not had_index:
        index.write_text("Hello from Kubernetes storage\n")
    try:
        lab.kubelite("apply", "-f", str(DOCS / "pv-volume.yaml"), "-f", str(DOCS / "pv-claim.yaml"))
        wait_until(lambda: "Bound" in lab.kubelite("get", "pvc", "task-pv-claim").stdout, timeout=30,
                   what="claim bound")
        pv = lab.get_json("pv", "task-pv-volume")
        assert pv["status"]["phase"] == "Bound" and pv["spec"]["claimRef"]["name"] == "task-pv-claim"
        lab.kubelite("apply", "-f", str(DOCS / "pv-pod.yaml"))
        wait_until(lambda: _running(lab, "task-pv-pod"), timeout=90, what="pv pod running")
        # The task's check: the web server in the pod serves the index.html of the volume.
        r = wait_until(lambda: lab.exec_in("task-pv-pod", "timeout 5 wget -q -O - http://localhost/").stdout,
                       timeout=30, what="nginx serving the volume")
        assert r == index.read_text(), r
    finally:
        _delete(lab, "pod", "task-pv-pod")
        wait_until(lambda: _gone(lab, "pod", "task-pv-pod"), timeout=90, what="pod gone")
        _delete(lab, "pvc", "task-pv-claim")
        wait_until(lambda: _gone(lab, "pvc", "task-pv-claim"), timeout=30, what="claim gone")
        # Retain (the default for a volume made by hand): Released, kept, data untouched.
        wait_until(lambda: lab.get_json("pv", "task-pv-volume")["status"]["phase"] == "Released", timeout=30,
                   what="volume released")
        _delete(lab, "pv", "task-pv-volume")
        if not had_index:
            index.unlink(missing_ok=True)
        if made:
            shutil.rmtree("/mnt/data", ignore_errors=True)


SHARED = """
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: shared-data}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
---
apiVersion: v1
kind: Pod
metadata: {name: sharing}
spec:
  volumes:
  - name: data
    persistentVolumeClaim: {claimName: shared-data}
  containers:
  - name: writer
    image: localhost:5000/kubelite/busybox:1.35
    command: ["sh", "-c", "date +%s%N > /data/stamp; sleep 3600"]
    volumeMounts: [{name: data, mountPath: /data}]
  - name: reader
    image: localhost:5000/kubelite/busybox:1.35
    command: ["sleep", "3600"]
    volumeMounts: [{name: data, mountPath: /shared, readOnly: true}]
"""


def _exec(lab: Lab, pod: str, container: str, command: str) -> str:
    r = lab.kubelite("exec", pod, "-c", container, "--timeout", "30", "--", "sh", "-c", command, check=False,
                     timeout=60)
    return r.stdout


def test_two_containers_share_a_local_path_claim_that_outlives_the_pod(lab: Lab) -> None:
    """The default local-path class provisions a directory on the pod's node; one container writes, the other
    reads; the data survives the pod; deleting the claim while a pod uses it leaves it Terminating until the pod
    is gone, and then the directory goes too."""
    sc = lab.kubelite("get", "sc").stdout
    assert "local-path (default)" in sc and "WaitForFirstConsumer" in sc, sc
    lab.kubelite("apply", "-f", "-", stdin=SHARED)
    try:
        wait_until(lambda: _running(lab, "sharing"), timeout=120, what="sharing pod running")
        stamp = wait_until(lambda: _exec(lab, "sharing", "reader", "cat /shared/stamp").strip(), timeout=30,
                           what="the reader sees the writer's file")
        claim = lab.get_json("pvc", "shared-data")
        assert claim["status"]["phase"] == "Bound" and claim["spec"]["storageClassName"] == "local-path"
        node = _pod(lab, "sharing")["spec"]["nodeName"]  # type: ignore[index]
        assert claim["metadata"]["annotations"]["volume.kubernetes.io/selected-node"] == node
        # The node reports how much local-path storage it offers (the scheduler and provisioner count it).
        assert lab.get_json("node", node)["status"]["allocatable"]["kubelite.io/local-path"].endswith("i")
        pv = lab.get_json("pv", claim["spec"]["volumeName"])
        directory = Path(pv["spec"]["hostPath"]["path"])
        assert directory.parent == node_dir(lab.plan, node) / "kubelet" / "local-path"
        assert (directory / "stamp").read_text().strip() == stamp

        lab.kubelite("delete", "pod", "sharing", timeout=90)
        lab.kubelite("apply", "-f", "-", stdin=SHARED)
        wait_until(lambda: _running(lab, "sharing"), timeout=120, what="sharing pod running again")
        assert _pod(lab, "sharing")["spec"]["nodeName"] == node  # type: ignore[index]
        # The new writer wrote a new stamp; the old data was there for it (same directory, same file).
        assert (directory / "stamp").exists()

        lab.kubelite("delete", "pvc", "shared-data", "--no-wait", timeout=60)
        time.sleep(3)
        line = lab.kubelite("get", "pvc", "shared-data").stdout.splitlines()[1].split()
        assert line[1] == "Terminating", line
        assert directory.exists()
        lab.kubelite("delete", "pod", "sharing", timeout=90)
        wait_until(lambda: _gone(lab, "pvc", "shared-data"), timeout=30, what="claim gone after its pod")
        wait_until(lambda: not directory.exists(), timeout=30, what="the volume's directory removed")
        wait_until(lambda: _gone(lab, "pv", pv["metadata"]["name"]), timeout=30, what="volume gone")
    finally:
        _delete(lab, "pod", "sharing")
        _delete(lab, "pvc", "shared-data")


DEPLOYMENT = """
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: db-data}
spec:
  accessModes: [ReadWriteOnce]
  storageClassName: local-path
  resources: {requests: {storage: 512Mi}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: db}
spec:
  replicas: 1
  strategy: {type: Recreate}
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      volumes:
      - name: data
        persistentVolumeClaim: {claimName: db-data}
      containers:
      - name: db
        image: localhost:5000/kubelite/busybox:1.35
        command: ["sh", "-c", "echo $HOSTNAME >> /var/lib/db/starts; sleep 3600"]
        volumeMounts: [{name: data, mountPath: /var/lib/db}]
"""


def _db_pods(lab: Lab) -> list[dict[str, Any]]:
    return [p for p in lab.get_json("pods", "-l", "app=db")["items"] if not p["metadata"].get("deletionTimestamp")]


def test_a_deployment_on_local_path_returns_to_its_volumes_node(lab: Lab) -> None:
    """Every replacement of the Deployment's pod lands on the node that holds its local-path volume, and finds
    the starts its predecessors wrote."""
    lab.kubelite("apply", "-f", "-", stdin=DEPLOYMENT)
    try:
        nodes = set()
        for _ in range(3):
            pods = wait_until(lambda: [p for p in _db_pods(lab) if _running(lab, p["metadata"]["name"])],
                              timeout=120, what="a running db pod")
            nodes.add(pods[0]["spec"]["nodeName"])
            lab.kubelite("delete", "pod", pods[0]["metadata"]["name"], timeout=90)
        assert len(nodes) == 1, nodes
        pods = wait_until(lambda: [p for p in _db_pods(lab) if _running(lab, p["metadata"]["name"])], timeout=120,
                          what="a running db pod")
        starts = _exec(lab, pods[0]["metadata"]["name"], "db", "cat /var/lib/db/starts").split()
        assert len(starts) == 4, starts
    finally:
        _delete(lab, "deployment", "db")
        wait_until(lambda: not _db_pods(lab), timeout=90, what="db pods gone")
        _delete(lab, "pvc", "db-data")


LIVE = """
apiVersion: v1
kind: ConfigMap
metadata: {name: live}
data: {color: blue}
---
apiVersion: v1
kind: Pod
metadata: {name: live-reader}
spec:
  volumes:
  - name: cfg
    configMap: {name: live}
  containers:
  - name: c
    image: localhost:5000/kubelite/busybox:1.35
    command: ["sleep", "3600"]
    volumeMounts:
    - {name: cfg, mountPath: /etc/live}
    - {name: cfg, mountPath: /etc/pinned/color, subPath: color}
"""


def test_a_mounted_configmap_updates_within_ten_seconds_but_not_through_subpath(lab: Lab) -> None:
    """Changing the ConfigMap shows in the mounted file within 10 s; the subPath mount keeps the old value."""
    lab.kubelite("apply", "-f", "-", stdin=LIVE)
    try:
        wait_until(lambda: _running(lab, "live-reader"), timeout=90, what="reader running")
        assert lab.exec_in("live-reader", "cat /etc/live/color").stdout == "blue"
        lab.kubelite("apply", "-f", "-", stdin=LIVE.replace("color: blue", "color: green"))
        start = time.monotonic()
        wait_until(lambda: lab.exec_in("live-reader", "cat /etc/live/color").stdout == "green", timeout=10,
                   interval=0.2, what="the new value in the mounted file")
        print(f"configmap update visible after {time.monotonic() - start:.1f}s")
        assert lab.exec_in("live-reader", "cat /etc/pinned/color").stdout == "blue"
    finally:
        _delete(lab, "pod", "live-reader")
        _delete(lab, "configmap", "live")


WAITER = """
apiVersion: v1
kind: Pod
metadata: {name: waiter}
spec:
  containers:
  - name: c
    image: localhost:5000/kubelite/busybox:1.35
    command: ["sleep", "3600"]
    env:
    - name: TOKEN
      valueFrom:
        secretKeyRef: {name: late-secret, key: token}
"""


def test_a_pod_waits_for_its_missing_secret_then_starts(lab: Lab) -> None:
    """A pod whose Secret is missing shows CreateContainerConfigError naming it, and starts once it is created."""
    lab.kubelite("apply", "-f", "-", stdin=WAITER)
    try:
        reason = wait_until(lambda: _waiting(lab, "waiter")[0] == "CreateContainerConfigError" and _waiting(
            lab, "waiter"), timeout=60, what="CreateContainerConfigError")
        assert reason[1] == 'secret "late-secret" not found', reason
        status = lab.kubelite("get", "pod", "waiter").stdout
        assert "CreateContainerConfigError" in status
        lab.kubelite("create", "secret", "generic", "late-secret", "--from-literal", "token=finally")
        wait_until(lambda: _running(lab, "waiter"), timeout=20, what="the pod running once its Secret exists")
        assert lab.exec_in("waiter", "echo $TOKEN").stdout.strip() == "finally"
    finally:
        _delete(lab, "pod", "waiter")
        _delete(lab, "secret", "late-secret")


CONFLICT = """
apiVersion: v1
kind: PersistentVolume
metadata: {name: elsewhere}
spec:
  storageClassName: pinned
  capacity: {storage: 1Gi}
  accessModes: [ReadWriteOnce]
  local: {path: /var/tmp}
  nodeAffinity:
    required:
      nodeSelectorTerms:
      - matchExpressions:
        - {key: kubernetes.io/hostname, operator: In, values: [no-such-node]}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: pinned-claim}
spec:
  storageClassName: pinned
  volumeName: elsewhere
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: never-bound}
spec:
  storageClassName: ""
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
---
apiVersion: v1
kind: Pod
metadata: {name: pinned-pod}
spec:
  volumes: [{name: d, persistentVolumeClaim: {claimName: pinned-claim}}]
  containers: [{name: c, image: localhost:5000/kubelite/busybox:1.35, command: [sleep, "3600"]}]
---
apiVersion: v1
kind: Pod
metadata: {name: unbound-pod}
spec:
  volumes: [{name: d, persistentVolumeClaim: {claimName: never-bound}}]
  containers: [{name: c, image: localhost:5000/kubelite/busybox:1.35, command: [sleep, "3600"]}]
"""


def _scheduled_message(lab: Lab, name: str) -> str:
    pod = _pod(lab, name) or {}
    cond = [c for c in pod.get("status", {}).get("conditions", []) if c["type"] == "PodScheduled"]
    return cond[0].get("message", "") if cond else ""


def test_unsatisfiable_claims_give_kubernetes_pending_reasons_and_explain_verdicts(lab: Lab) -> None:
    """A claim bound to a volume pinned to no node, and a claim never bound, keep their pods Pending with
    Kubernetes' messages; `explain` shows VolumeBinding's verdict per node."""
    lab.kubelite("apply", "-f", "-", stdin=CONFLICT)
    try:
        wait_until(lambda: _scheduled_message(lab, "pinned-pod") ==
                   "0/3 nodes are available: 3 node(s) had volume node affinity conflict.", timeout=30,
                   what="the node affinity conflict message")
        wait_until(lambda: _scheduled_message(lab, "unbound-pod") ==
                   "0/3 nodes are available: pod has unbound immediate PersistentVolumeClaims.", timeout=30,
                   what="the unbound claims message")
        explained = lab.kubelite("explain", "pod", "pinned-pod").stdout
        assert "VolumeBinding" in explained and "node(s) had volume node affinity conflict" in explained, explained
    finally:
        _delete(lab, "pod", "pinned-pod", "unbound-pod")
        _delete(lab, "pvc", "pinned-claim", "never-bound")
        _delete(lab, "pv", "elsewhere")


_READ_ETCD = """
import asyncio, sys
from aetcd import rpc
from apiserver.storage.etcd import EtcdConnection, EtcdTLS
async def main():
    raw = EtcdConnection("127.0.0.1", 2379, EtcdTLS(*sys.argv[2:5]))
    got = await raw.kvstub.Range(rpc.RangeRequest(key=sys.argv[1].encode()), timeout=10)
    await raw.close()
    sys.stdout.buffer.write(got.kvs[0].value if got.kvs else b"")
asyncio.run(main())
"""


def _etcd_raw(lab: Lab, key: str) -> bytes:
    """A value as the lab's etcd holds it (read from inside the control plane's namespace, over mutual TLS with
    the apiserver's etcd client certificate)."""
    from deploy.node import certs

    cp = lab.plan.control_plane
    store = control_plane_spec(lab.plan).pki
    tls_files = [str(store.crt(certs.ETCD_CA)), str(store.crt("apiserver-etcd-client")),
                 str(store.key("apiserver-etcd-client"))]
    return subprocess.run(["nsenter", f"--net=/run/netns/{cp.netns}", sys.executable, "-c", _READ_ETCD, key,
                           *tls_files], capture_output=True, check=True, timeout=60, cwd=ROOT).stdout


def test_secrets_in_etcd_are_ciphertext_and_rotate_key_rewrites_them(lab: Lab) -> None:
    """In the lab's etcd a Secret is aesgcm ciphertext; `secrets rotate-key` moves every Secret to a new key and
    they still read back."""
    lab.kubelite("create", "secret", "generic", "rotated", "--from-literal", "word=plain-word-123")
    try:
        first = _etcd_raw(lab, "/registry/secrets/default/rotated")
        assert first.startswith(b"k8s:enc:aesgcm:v1:key1:") and b"plain-word-123" not in first, first[:60]
        out = lab.kubelite("secrets", "rotate-key", "--name", lab.name).stdout
        assert "key2" in out, out
        second = _etcd_raw(lab, "/registry/secrets/default/rotated")
        assert second.startswith(b"k8s:enc:aesgcm:v1:key2:") and b"plain-word-123" not in second
        got = lab.get_json("secret", "rotated")
        assert base64.b64decode(got["data"]["word"]) == b"plain-word-123"
    finally:
        _delete(lab, "secret", "rotated")


