"""The whole system on a 3-node lab, driven through the CLI as a user would.

Tests run in file order and share the demo app; each leaves it as it found it.
"""

from __future__ import annotations

import asyncio
import collections
import io
import json
import re
import subprocess
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chaos import scenarios
from chaos.faults import LabTarget
from deploy.node import images

from .lab import KUBELITE, Lab, pods, ready, wait_until

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "localhost:5000/kubelite/busybox:1.35"
IMAGE_V2 = "localhost:5000/kubelite/busybox:v2"


@pytest.fixture(scope="module")
def demo(lab: Lab) -> Iterator[Lab]:
    """The README's demo: a 3-replica web Deployment, its Services, and a client pod."""
    lab.kubelite("apply", "-f", str(ROOT / "examples"))
    lab.kubelite("rollout", "status", "deployment/web", "--timeout", "120s", timeout=150)
    lab.kubelite("wait", "--for=condition=Ready", "pod/client", "--timeout", "90", timeout=120)
    yield lab


def web_pods(lab: Lab) -> list[dict[str, Any]]:
    return [p for p in pods(lab, "app=web") if not p["metadata"].get("deletionTimestamp")]


def fetch_many(lab: Lab, url: str, n: int) -> collections.Counter[str]:
    """n requests from the client pod, each on a new connection; count answers by pod name."""
    result = lab.exec_in("client", f"for i in $(seq {n}); do timeout 5 wget -q -O - {url}; echo; done",
                         timeout=120)
    assert result.returncode == 0, result.stderr
    return collections.Counter(m.group(1) for m in re.finditer(r"hello from (\S+)", result.stdout))


def test_demo_pods_spread_over_nodes(demo: Lab) -> None:
    """`get pods -o wide` shows the three web replicas on three different nodes, all Running."""
    out = demo.kubelite("get", "pods", "-o", "wide", "-l", "app=web").stdout
    rows = [line.split() for line in out.splitlines()[1:]]
    assert len(rows) == 3, out
    assert {r[2] for r in rows} == {"Running"}, out
    assert {r[6] for r in rows} == {n.role for n in demo.plan.nodes}, out


def test_every_node_keeps_its_pod_gateway_address(demo: Lab) -> None:
    """Each node's pod bridge has an address set once (the kernel's addr_assign_type 3), never its lowest port's:
    otherwise removing the pod that holds it changes the pods' gateway, and pods whose ARP entries still name
    the old one lose every connection for up to ~45 s (an Ingress client did, during a rollout)."""
    for node in demo.plan.nodes:
        sysfs = f"/sys/class/net/{node.cni_bridge}/addr_assign_type"  # ip netns exec mounts the node's own /sys
        got = subprocess.run(["ip", "netns", "exec", node.netns, "cat", sysfs], capture_output=True, text=True,
                             timeout=30)
        assert (node.role, got.stdout.strip()) == (node.role, "3"), got.stderr


def test_service_by_cluster_ip_dns_name_and_node_port(demo: Lab) -> None:
    """The client pod reaches the web Service by DNS name, by ClusterIP, and by NodePort on every node."""
    svc = demo.get_json("service", "web")
    cluster_ip = svc["spec"]["clusterIP"]
    for url in ("http://web", "http://web.default.svc.cluster.local", f"http://{cluster_ip}"):
        out = demo.exec_in("client", f"timeout 5 wget -q -O - {url}")
        assert out.returncode == 0 and "hello from web-" in out.stdout, (url, out.stdout, out.stderr)
    for node in demo.plan.nodes:
        out = demo.exec_in("client", f"timeout 5 wget -q -O - http://{node.address}:30080")
        assert out.returncode == 0 and "hello from web-" in out.stdout, (node.role, out.stdout, out.stderr)


def test_requests_are_spread_over_every_endpoint(demo: Lab) -> None:
    """300 requests through the ClusterIP land on pods on all three nodes, each between 20% and 47%."""
    counts = fetch_many(demo, "http://web", 300)
    assert sum(counts.values()) == 300, counts
    names = {p["metadata"]["name"] for p in web_pods(demo)}
    assert set(counts) == names, counts
    for name, n in counts.items():
        assert 0.20 * 300 <= n <= 0.47 * 300, (name, counts)


def test_client_ip_session_affinity(demo: Lab) -> None:
    """With sessionAffinity ClientIP every request from one pod lands on the same endpoint."""
    demo.kubelite("apply", "-f", "-", stdin=json.dumps({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "sticky"},
        "spec": {"selector": {"app": "web"}, "sessionAffinity": "ClientIP",
                 "ports": [{"port": 80, "targetPort": "http"}]}}))
    try:
        wait_until(lambda: len(demo.get_json("endpoints", "sticky").get("subsets", [{}])[0].get("addresses", []))
                   == 3, timeout=20, what="sticky endpoints")
        time.sleep(1.0)  # the proxies' next sync
        counts = fetch_many(demo, "http://sticky", 30)
        assert sum(counts.values()) == 30 and len(counts) == 1, counts
    finally:
        demo.kubelite("delete", "service", "sticky")


def test_service_without_endpoints_refuses_at_once(demo: Lab) -> None:
    """A Service whose selector matches nothing refuses connections at once instead of timing out."""
    demo.kubelite("apply", "-f", "-", stdin=json.dumps({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "nobody"},
        "spec": {"selector": {"app": "nobody"}, "ports": [{"port": 80, "targetPort": 8080}]}}))
    try:
        time.sleep(1.5)
        t0 = time.monotonic()
        out = demo.exec_in("client", "timeout 5 wget -q -O - http://nobody; echo rc=$?")
        assert "rc=0" not in out.stdout, out.stdout
        assert "refused" in (out.stdout + out.stderr).lower(), (out.stdout, out.stderr)
        assert time.monotonic() - t0 < 4.0
    finally:
        demo.kubelite("delete", "service", "nobody")


def test_unready_endpoint_gets_no_requests(demo: Lab) -> None:
    """A pod that turns unready stops receiving requests within about a second, and gets them back when ready."""
    demo.kubelite("apply", "-f", "-", stdin=json.dumps({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "flappy", "labels": {"app": "flappy"}},
        "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
            "name": "web", "image": IMAGE, "command": ["sh", "-c"],
            "args": ["mkdir -p /tmp/www && echo hello from $(hostname) > /tmp/www/index.html && touch /tmp/ready && "
                     "exec httpd -f -p 8080 -h /tmp/www"],
            "ports": [{"containerPort": 8080}],
            "readinessProbe": {"exec": {"command": ["cat", "/tmp/ready"]}, "periodSeconds": 1,
                               "failureThreshold": 1}}]}}) + "\n---\n" + json.dumps({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "flappy"},
        "spec": {"selector": {"app": "flappy"}, "ports": [{"port": 80, "targetPort": 8080}]}}))
    try:
        demo.kubelite("wait", "--for=condition=Ready", "pod/flappy", "--timeout", "60", timeout=90)
        wait_until(lambda: fetch_many(demo, "http://flappy", 1).get("flappy"), timeout=20, what="flappy serving")
        demo.kubelite("exec", "flappy", "--", "rm", "/tmp/ready")
        demo.kubelite("wait", "--for=condition=Ready=False", "pod/flappy", "--timeout", "30", timeout=60)
        time.sleep(1.0)  # the endpoints controller and the proxies sync within this
        out = demo.exec_in("client", "timeout 3 wget -q -O - http://flappy; echo rc=$?")
        assert "hello from flappy" not in out.stdout, out.stdout
    finally:
        demo.kubelite("delete", "pod", "flappy", "--grace-period", "1")
        demo.kubelite("delete", "service", "flappy")


def test_scale_up_and_down(demo: Lab) -> None:
    """`scale` 3 -> 6 -> 2 leaves exactly that many Ready web pods, and the Service follows."""
    for n in (6, 2, 3):
        demo.kubelite("scale", "deployment", "web", "--replicas", str(n))
        wait_until(lambda n=n: len(web_pods(demo)) == n and all(ready(p) for p in web_pods(demo)),
                   timeout=60, what=f"{n} ready web pods")
        wait_until(lambda n=n: sum(len(s.get("addresses", [])) for s in
                                   demo.get_json("endpoints", "web").get("subsets", [])) == n,
                   timeout=30, what=f"{n} endpoints")


class _Invariant:
    """Watches pods continuously during a rollout: never more than N + maxSurge pods, never fewer
    than N - maxUnavailable ready."""

    def __init__(self, lab: Lab, selector: str) -> None:
        self.lab, self.selector = lab, selector
        self.max_total = 0
        self.min_ready = 1 << 30
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        async def go() -> None:
            async with self.lab.client() as c:
                while not self._stop.is_set():
                    items = (await c.list("pods", "default", label_selector=self.selector)).items
                    live = [p for p in items if not p.metadata.HasField("deletion_timestamp")
                            and p.status.phase not in ("Succeeded", "Failed")]
                    ok = [p for p in live if any(c.type == "Ready" and c.status == "True"
                                                 for c in p.status.conditions)]
                    self.max_total = max(self.max_total, len(live))
                    self.min_ready = min(self.min_ready, len(ok))
                    self.samples += 1
                    await asyncio.sleep(0.05)

        asyncio.run(go())

    def __enter__(self) -> _Invariant:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


def test_rolling_update_keeps_the_invariant_and_undo_returns(demo: Lab) -> None:
    """A rolling update to a new image never exceeds N+maxSurge pods nor drops below N-maxUnavailable ready
    (checked continuously); `rollout undo` brings the previous image back."""
    demo.tag_image(IMAGE, IMAGE_V2)
    with _Invariant(demo, "app=web") as inv:
        demo.kubelite("set", "image", "deployment/web", f"web={IMAGE_V2}")
        demo.kubelite("rollout", "status", "deployment/web", "--timeout", "120s", timeout=150)
        time.sleep(0.5)
    images = {c["image"] for p in web_pods(demo) for c in p["spec"]["containers"]}
    assert images == {IMAGE_V2}
    # 3 replicas, maxSurge 25% -> 1, maxUnavailable 25% -> 0.
    assert inv.samples > 10
    assert inv.max_total <= 4, vars(inv)
    assert inv.min_ready >= 3, vars(inv)
    history = demo.kubelite("rollout", "history", "deployment/web").stdout
    assert re.search(r"^\s*1\s", history, re.M) and re.search(r"^\s*2\s", history, re.M), history
    demo.kubelite("rollout", "undo", "deployment/web")
    demo.kubelite("rollout", "status", "deployment/web", "--timeout", "120s", timeout=150)
    wait_until(lambda: {c["image"] for p in web_pods(demo) for c in p["spec"]["containers"]} == {IMAGE},
               timeout=60, what="pods back on the first image")


def test_logs_follow_and_exec(demo: Lab) -> None:
    """`logs -f` streams new lines as a container writes them; `exec` prints output and returns the exit code."""
    demo.kubelite("apply", "-f", "-", stdin=json.dumps({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "ticker"},
        "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
            "name": "tick", "image": IMAGE, "command": ["sh", "-c"],
            "args": ["i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done"]}]}}))
    try:
        demo.kubelite("wait", "--for=condition=Ready", "pod/ticker", "--timeout", "60", timeout=90)
        proc = subprocess.Popen([KUBELITE, "logs", "-f", "ticker"], stdout=subprocess.PIPE, text=True,
                                env=demo.env)
        try:
            seen = [proc.stdout.readline() for _ in range(8)]  # type: ignore[union-attr]
        finally:
            proc.kill()
            proc.wait()
        numbers = [int(line.split()[1]) for line in seen if line.startswith("tick")]
        assert len(numbers) == 8 and numbers == sorted(numbers), seen
        out = demo.kubelite("exec", "ticker", "--", "sh", "-c", "echo out; echo err >&2; exit 3", check=False)
        assert out.returncode == 3 and out.stdout.strip() == "out" and "err" in out.stderr
        hostname = demo.kubelite("exec", "ticker", "--", "hostname").stdout.strip()
        assert hostname == "ticker"
    finally:
        demo.kubelite("delete", "pod", "ticker", "--grace-period", "1")


def test_node_loss_replaces_pods_within_ten_seconds(demo: Lab) -> None:
    """Stopping a node's kubelet and containerd: its web pods run elsewhere and leave the Service within 10 s;
    back again, the node is Ready and no pod is left twice."""
    # A bare pod (the client) is deleted with its node, as in Kubernetes: spare the client's node.
    client_node = demo.get_json("pod", "client")["spec"]["nodeName"]
    victim = next(p["spec"]["nodeName"] for p in web_pods(demo) if p["spec"]["nodeName"] != client_node)

    async def go() -> scenarios.Report:
        async with demo.client() as c:
            return await scenarios.node_loss(LabTarget(demo.name), c, victim, timeout=60)

    report = asyncio.run(go())
    assert report.ok, report.as_dict()
    assert report.seconds_to_replaced is not None and report.seconds_to_replaced <= 10, report.as_dict()
    assert report.seconds_to_endpoints_dropped is not None and report.seconds_to_endpoints_dropped <= 10
    assert report.duplicate_pods == 0
    wait_until(lambda: len(web_pods(demo)) == 3 and all(ready(p) for p in web_pods(demo)), timeout=60,
               what="3 ready web pods after the node returned")


def test_proxy_restart_leaves_service_working_without_duplicate_rules(demo: Lab) -> None:
    """Restarting a node's proxy keeps the Service answering and leaves the same rules, once each."""
    node = demo.plan.nodes[0]

    def rules() -> list[str]:
        out = subprocess.run(["ip", "netns", "exec", node.netns, "iptables-save", "-t", "nat"], capture_output=True,
                             text=True, check=True, timeout=30).stdout
        return sorted(line for line in out.splitlines() if line.startswith("-A KUBE-SERVICES"))

    before = rules()
    demo.kubelite("chaos", "restart", f"proxy-{node.role}", "--name", demo.name)
    time.sleep(2.0)
    after = rules()
    assert after == before
    assert len(after) == len(set(after))
    assert fetch_many(demo, "http://web", 5).total() == 5


def test_cascading_delete(demo: Lab) -> None:
    """Deleting the Deployment deletes its ReplicaSets and their pods."""
    demo.kubelite("delete", "deployment", "web")
    wait_until(lambda: not demo.get_json("replicasets", "-l", "app=web")["items"] and not pods(demo, "app=web"),
               timeout=60, what="replicasets and pods gone")
    demo.kubelite("delete", "-f", str(ROOT / "examples"), "--ignore-not-found", "--grace-period", "1")


def test_images_load_brings_a_users_image_to_every_node(lab: Lab, tmp_path: Path) -> None:
    """`kubelite images load TARBALL` imports any OCI image-layout tarball into every node; a pod runs it."""
    name = "localhost:5000/user/hello:1"
    busybox = Path("/bin/busybox")
    layout = images.build_layout(name, images.busybox_entries(busybox.read_bytes(), images.busybox_applets(busybox)),
                                 images.ImageConfig(cmd=("sh", "-c", "echo hello from a user image; sleep 1000")))
    tarball = tmp_path / "hello.tar"
    with tarfile.open(tarball, "w") as tar:
        for path, data in layout.items():
            info = tarfile.TarInfo(path)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    out = lab.kubelite("images", "load", str(tarball), "--name", lab.name)
    assert f"into {len(lab.plan.nodes)} containerd(s)" in out.stdout
    for node in lab.plan.nodes:
        listed = subprocess.run(["ctr", "-a", lab.containerd_socket(node.role), "-n", "k8s.io", "images", "ls", "-q"],
                                capture_output=True, text=True, check=True, timeout=30).stdout.split()
        assert name in listed, (node.role, listed)
    lab.kubelite("apply", "-f", "-", stdin=json.dumps({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "user-image"},
        "spec": {"terminationGracePeriodSeconds": 1, "containers": [{"name": "hello", "image": name}]}}))
    try:
        lab.kubelite("wait", "--for=condition=Ready", "pod/user-image", "--timeout", "60", timeout=90)
        wait_until(lambda: "hello from a user image" in lab.kubelite("logs", "user-image").stdout, timeout=20,
                   what="the user image's output")
    finally:
        lab.kubelite("delete", "pod", "user-image", "--grace-period", "1")
