"""Pod startup latency on one node with containerd, against the raw CRI cost (JSON to stdout).

Starts etcd (temp dir, free port), `kubelite apiserver`, a containerd in a
scratch network namespace (kbench-*, deleted afterwards) and `kubelite
kubelet --runtime cri` as separate processes; no scheduler: pods are created
with spec.nodeName set. Measured in the same run:

- raw_cri: RunPodSandbox + CreateContainer + StartContainer issued directly
  to the same containerd for the same pods (busybox httpd), per pod from
  request to started: the runtime's own cost;
- kubelite: created (client side, just before Create) to Running with every
  container started, as seen through a watch;
- overhead: kubelite p50 minus raw CRI p50;
- the kubelet's RSS idle and with the pods running; and a `--runtime fake`
  kubelet's RSS idle and with `--fake-pods` hollow pods.

Both are measured in two modes: `burst` (all pods at once, concurrently: what
containerd can take in parallel dominates) and `paced` (one pod every
--interval seconds, the Kubernetes pod-startup SLO's way; raw and kubelite
alternate in rounds of --round-size so both see the same machine). The load
average at start and end is reported: this machine is shared and noisy.

    python bench/pod_startup.py                 # 50 pods, 100 hollow pods
    python bench/pod_startup.py --pods 20 --modes paced
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import secrets
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from api import logs
from api.pb import core_pb2
from bench.harness import Processes, rss_mb
from client.api import Client
from deploy.node import containerd
from kubelet.runtime import cgroups, images
from kubelet.runtime.cri import CRIRuntime
from kubelet.runtime.interface import ContainerConfig, PodSandboxConfig

POD_CIDR = "10.244.250.0/24"
NODE = "bench-node"
FAKE_NODE = "bench-hollow"
HTTPD = ("httpd", "-f", "-p", "8080", "-h", "/www")


def percentiles(values: list[float]) -> dict[str, float]:
    ms = sorted(v * 1000 for v in values)
    if not ms:
        return {}

    def pct(p: float) -> float:
        return round(ms[min(len(ms) - 1, max(0, round(p / 100 * len(ms) + 0.5) - 1))], 1)

    return {"n": len(ms), "p50_ms": pct(50), "p90_ms": pct(90), "p99_ms": pct(99), "max_ms": round(ms[-1], 1),
            "mean_ms": round(statistics.fmean(ms), 1)}


class Cluster:
    """etcd, the apiserver, one node's containerd in its own network namespace, and kubelets."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.processes = Processes(workdir, new_session=True)
        self.procs = self.processes.procs
        self.netns = ""
        self.etcd_url = ""
        self.api = ""
        self.node: containerd.NodeConfig | None = None

    async def start(self) -> None:
        self.etcd_url = self.processes.start_etcd()
        self.api = self.processes.start_apiserver(self.etcd_url, wait=False)
        self.netns = f"kbench-{secrets.token_hex(3)}"
        await asyncio.to_thread(subprocess.run, ["ip", "netns", "add", self.netns], check=True)
        await asyncio.to_thread(subprocess.run, ["ip", "-n", self.netns, "link", "set", "lo", "up"], check=True)
        self.node = containerd.NodeConfig(name=self.netns, node_dir=self.workdir / "node", netns=self.netns,
                                          pod_cidr=POD_CIDR, cgroup_root=f"/{self.netns}")
        await containerd.start(self.node)

    def start_kubelet(self, name: str, node: str, *extra: str) -> subprocess.Popen[bytes]:
        return self.processes.start(name, "kubelet", "--server", self.api, *self.processes.kubelet_flags(node),
                                    "--node-name", node,
                                    "--node-ip", "127.0.0.1", "--listen", "127.0.0.1:0", "--cluster-dns", "10.96.0.10",
                                    "--root-dir", str(self.workdir / name),
                                    "--log-level", os.environ.get("BENCH_KUBELET_LOG", "warning"), *extra)

    def stop(self, name: str) -> None:
        self.processes.stop(name)

    async def close(self) -> None:
        for name in [n for n in self.procs if n.startswith("kubelet")]:
            self.stop(name)
        if self.node is not None:
            await containerd.stop_and_clean(self.node.node_dir)
        self.processes.stop_all()
        if self.netns:
            await asyncio.to_thread(subprocess.run, ["ip", "netns", "del", self.netns], check=False)


async def wait_api(processes: Processes, timeout: float = 30) -> Client:
    client = processes.client()
    deadline = time.monotonic() + timeout
    while True:
        try:
            await client.list("namespaces")
            return client
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


async def wait_node_ready(client: Client, node: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            n = await client.get("nodes", node)
            if any(c.type == "Ready" and c.status == "True" for c in n.status.conditions):
                return
        await asyncio.sleep(0.2)
    raise TimeoutError(f"node {node} not ready")


def _schedule(count: int, mode: str, interval: float) -> list[float]:
    """Seconds after the start at which each pod is launched."""
    return [0.0] * count if mode == "burst" else [i * interval for i in range(count)]


# ---------------------------------------------------------------- raw CRI


async def raw_cri(node: containerd.NodeConfig, count: int, mode: str, interval: float, log_dir: Path
                  ) -> list[float]:
    """RunPodSandbox + CreateContainer + StartContainer per pod, straight to containerd."""
    rt = CRIRuntime(node.address, timeout=60)
    made: list[tuple[str, str]] = []
    try:
        latencies: list[float] = []

        async def one(i: int, delay: float) -> None:
            await asyncio.sleep(delay)
            uid = f"raw-{mode}-{i}-{secrets.token_hex(3)}"
            cgroup = f"{node.cgroup_root}/pod{uid}"
            sb = PodSandboxConfig(name=f"raw-{i}", namespace="bench", uid=uid, hostname=f"raw-{i}",
                                  log_directory=str(log_dir / uid), cgroup_parent=cgroup)
            started = time.monotonic()
            sandbox_id = await rt.run_pod_sandbox(sb)
            made.append((sandbox_id, cgroup))
            cid = await rt.create_container(sandbox_id, ContainerConfig(name="httpd", image=images.BUSYBOX_IMAGE,
                                                                        command=HTTPD, log_path="httpd/0.log"), sb)
            await rt.start_container(cid)
            latencies.append(time.monotonic() - started)

        await asyncio.gather(*(one(i, d) for i, d in enumerate(_schedule(count, mode, interval))))
        return latencies
    finally:
        for sandbox_id, cgroup in made:
            with contextlib.suppress(Exception):
                await rt.stop_pod_sandbox(sandbox_id)
                await rt.remove_pod_sandbox(sandbox_id)
            with contextlib.suppress(OSError):
                await cgroups.remove(cgroup, kill_procs=True)
        await rt.close()


# ---------------------------------------------------------------- kubelite


def bench_pod(name: str, node: str) -> core_pb2.Pod:
    return core_pb2.Pod(metadata={"name": name, "namespace": "default", "labels": {"bench": "startup"}}, spec={
        "node_name": node, "termination_grace_period_seconds": 1,
        "containers": [{"name": "httpd", "image": images.BUSYBOX_IMAGE, "command": list(HTTPD)}]})


def _started(p: core_pb2.Pod) -> bool:
    return p.status.phase == "Running" and bool(p.status.container_statuses) and all(
        c.state.HasField("running") for c in p.status.container_statuses)


async def kubelite_startup(client: Client, node: str, count: int, mode: str, interval: float, prefix: str
                           ) -> list[float]:
    """Create pods bound to `node`; seconds from each create to Running with its containers started (watched)."""
    created: dict[str, float] = {}
    seen: dict[str, float] = {}
    rv = (await client.list("pods", "default", limit=1)).resource_version
    done = asyncio.Event()

    async def watch() -> None:
        async for ev in client.watch("pods", "default", resource_version=rv, label_selector="bench=startup"):
            name = ev.object.metadata.name
            if name.startswith(prefix) and name not in seen and ev.type != "DELETED" and _started(ev.object):
                seen[name] = time.monotonic()
                if len(seen) == count:
                    done.set()
                    return

    async def create(i: int, delay: float) -> None:
        await asyncio.sleep(delay)
        name = f"{prefix}{i}"
        created[name] = time.monotonic()
        await client.create(bench_pod(name, node))

    watcher = asyncio.ensure_future(watch())
    try:
        await asyncio.gather(*(create(i, d) for i, d in enumerate(_schedule(count, mode, interval))))
        async with asyncio.timeout(120):
            await done.wait()
    finally:
        watcher.cancel()
    return [seen[n] - created[n] for n in created]


async def delete_all(client: Client, prefix: str, count: int) -> None:
    await asyncio.gather(*(client.delete("pods", f"{prefix}{i}", "default") for i in range(count)),
                         return_exceptions=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        left = [p for p in await client.list_all("pods", "default") if p.metadata.name.startswith(prefix)]
        if not left:
            return
        await asyncio.sleep(0.5)


async def main(args: argparse.Namespace) -> dict:
    load_start = list(os.getloadavg())
    workdir = Path(tempfile.mkdtemp(prefix="kubelite-bench-"))
    cluster = Cluster(workdir)
    result: dict = {"benchmark": "pod_startup", "pods": args.pods, "image": images.BUSYBOX_IMAGE,
                    "machine": {"cpus": os.cpu_count(), "kernel": platform.release()}, "modes": {}}
    try:
        await cluster.start()
        assert cluster.node is not None
        client = await wait_api(cluster.processes)
        kubelet = cluster.start_kubelet(
            "kubelet", NODE, "--runtime", "cri", "--cri-socket", f"unix://{cluster.node.address}",
            "--pod-cidr", POD_CIDR, "--cgroup-root", cluster.node.cgroup_root,
            "--probe-netns", f"/run/netns/{cluster.netns}", *shlex.split(args.kubelet_args))
        await wait_node_ready(client, NODE)
        await asyncio.sleep(1)
        rss_idle = rss_mb(kubelet.pid)
        rss_loaded = 0.0
        for mode in args.modes:
            # Rounds alternate raw CRI and kubelite, so both sample the same (noisy) machine.
            size = args.pods if mode == "burst" else args.round_size
            raw: list[float] = []
            kl: list[float] = []
            for r, start in enumerate(range(0, args.pods, size)):
                n = min(size, args.pods - start)
                raw += await raw_cri(cluster.node, n, mode, args.interval, workdir / "raw-logs")
                prefix = f"{mode}-{r}-"
                kl += await kubelite_startup(client, NODE, n, mode, args.interval, prefix)
                await asyncio.sleep(1)
                rss_loaded = max(rss_loaded, rss_mb(kubelet.pid))
                await delete_all(client, prefix, n)
            raw_p, kl_p = percentiles(raw), percentiles(kl)
            result["modes"][mode] = {
                "raw_cri": raw_p, "kubelite": kl_p,
                "overhead_p50_ms": round(kl_p["p50_ms"] - raw_p["p50_ms"], 1),
                "overhead_p99_ms": round(kl_p["p99_ms"] - raw_p["p99_ms"], 1),
                "targets": {"p99_under_2s": kl_p["p99_ms"] < 2000,
                            "overhead_p50_under_300ms": kl_p["p50_ms"] - raw_p["p50_ms"] < 300},
            }
            if mode == "paced":
                result["modes"][mode].update(interval_s=args.interval, round_size=size)
        result["kubelet_rss_mb"] = {"idle": rss_idle, f"with_{args.pods}_pods": rss_loaded}
        cluster.stop("kubelet")

        fake = cluster.start_kubelet("kubelet-fake", FAKE_NODE, "--runtime", "fake", "--pod-cidr", "10.250.0.0/16",
                                     "--max-pods", str(args.fake_pods + 10))
        await wait_node_ready(client, FAKE_NODE)
        await asyncio.sleep(1)
        fake_idle = rss_mb(fake.pid)
        fake_lat = await kubelite_startup(client, FAKE_NODE, args.fake_pods, "burst", 0, "hollow-")
        await asyncio.sleep(2)
        result["fake_kubelet"] = {"pods": args.fake_pods, "rss_mb": {"idle": fake_idle,
                                                                     f"with_{args.fake_pods}_pods": rss_mb(fake.pid)},
                                  "startup": percentiles(fake_lat)}
        await delete_all(client, "hollow-", args.fake_pods)
        await client.close()
    finally:
        result["load_average"] = {"start": load_start, "end": list(os.getloadavg())}
        await cluster.close()
        if not os.environ.get("BENCH_KEEP"):
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(workdir, file=sys.stderr)
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pods", type=int, default=50)
    parser.add_argument("--fake-pods", type=int, default=100)
    parser.add_argument("--modes", nargs="+", choices=["burst", "paced"], default=["burst", "paced"])
    parser.add_argument("--interval", type=float, default=0.2, help="seconds between pods in paced mode")
    parser.add_argument("--round-size", type=int, default=10, help="paced mode: pods per raw/kubelite round")
    parser.add_argument("--kubelet-args", default="", help='extra `kubelite kubelet` flags, e.g. "--no-events"')
    logs.configure("bench", level="warning")  # logs to stderr: stdout is the JSON alone
    print(json.dumps(asyncio.run(main(parser.parse_args())), indent=2))
