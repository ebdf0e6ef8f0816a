"""Controller-manager figures on 100 hollow nodes (JSON to stdout). Not a test.

Everything runs as the real daemons, each its own process on this machine:
etcd, `kubelite apiserver`, `kubelite scheduler`, `kubelite controller-manager`
(node-monitor-grace-period 4 s, hollow nodes renewing every second; pods tolerate unreachable nodes 1 s)
and `kubelite hollow-nodes --count 100` (100 full kubelets over the fake
runtime, in one process). The benchmark process only creates objects and
watches. Reported:

- baseline: raw apiserver pod creates/s in this run (1000 bare pods that no
  scheduler handles, 64 requests in flight), the ceiling for any controller;
- controller_only: a Deployment of 1000 replicas whose pods no scheduler
  takes (so only the controllers write): pods created/s, next to the raw rate;
- create: a Deployment of 1000 replicas, from the create request until the
  Deployment reports 1000 available (and until a watch saw the last pod
  created, the last bound and all 1000 Ready); pods created/s (create request
  to last pod seen by a watch) next to the baseline; target 2.5 s. Controllers
  send slow-start batches in CreateMany calls and the scheduler its binds in
  BindMany calls: 5.9 s -> 4.5 s -> 2.9-3.1 s on this machine; with watchers paced
  and group commit batching behind the transaction in flight, 2.66 s; with hollow
  pods' files in /dev/shm too, 2.49 and 2.99 s. The phase also reports each
  process's CPU per pod and the apiserver's calls per pod by verb and resource (its metrics; a CreateMany's
  objects count as creates, a BindMany's as binds, a CreateTokenMany's as create_token; 0.2-0.6 lease
  updates per pod are the hollow nodes' heartbeats); `--plot PNG` draws pods created, bound and Ready over
  time above each process's CPU. Every daemon on uvloop rather than asyncio's own loop (A/B, alternating,
  two rounds each): available 3.62 and 3.37 s -> 3.08 and 3.02 s. With 64 binds in flight in the scheduler
  a BindMany carried about 16 and binding lagged creation by a second; with 512, up to 250: available
  2.72-2.76 s, the kubelets' side the tail (Ready lagging bound by about a second). Each kubelet then asked
  for each pod's token in a unary CreateToken, which under the burst took 0.1-0.7 s; sent together in
  CreateTokenMany calls (A/B, three rounds): available 2.87/3.16/2.95 -> 2.48/2.22/2.80 s, apiserver CPU
  per pod 1.96-2.10 -> 1.31-1.56 ms. The hollow kubelets' root is on tmpfs, so their volume and log file
  work then ran inline rather than on threads (A/B, three rounds): available 2.77/2.66/1.98 ->
  2.30/2.21/2.08 s, hollow nodes 1.20-1.78 -> 1.20-1.41 ms per pod. Since then, per pod: apiserver
  1.3-1.5 ms, hollow nodes 1.2-1.5, controller-manager 0.5, etcd 0.3-0.4, scheduler 0.3 (the scheduler's
  Scheduled events now go in CreateMany calls too, so all 1,000 are written within the phase, where
  before one at a time only 100-200 were); the Ready curve still has flat stretches while the hollow
  nodes are the busiest process. `--profile DIR` records py-spy profiles of the apiserver
  and the hollow nodes during this phase;
- rolling_update: a new image with maxSurge 25% / maxUnavailable 25%, until
  the rollout is complete; the most pods and fewest ready pods a watcher saw;
- indexed_job: one Indexed Job of 1000 completions (parallelism 1000) whose
  pods exit 0 a second after they start, from the create request until the
  Job is Complete (every pod counted through its tracking finalizer), next to
  the Deployment's seconds_to_available above;
- node_loss: 100 pods on one node (the other 99 are cordoned while they are
  placed, then uncordoned), its kubelet stopped; time until the node is
  Unknown, until its pods are evicted, and until 100 replacements are Ready
  elsewhere (and gone from the Service's Endpoints);
- daemonset: a second cluster of 1000 hollow nodes (leases renewed every 10 s,
  node-monitor-grace-period 40 s, so a thousand heartbeats do not drown the
  two-core machine), a DaemonSet created, until it reports 1000 pods
  available (target: under 10 s).

    python bench/controllers.py                 # defaults: 100 nodes, 1000 replicas, 1000 daemon nodes
    python bench/controllers.py --nodes 20 --replicas 200 --daemon-nodes 200 --keep-logs /tmp/cm-bench
    python bench/controllers.py --skip-loss --daemon-nodes 0 --profile /tmp/prof   # the create phase, profiled
    python bench/controllers.py --skip-loss --daemon-nodes 0 --plot /tmp/create.png   # ... and drawn over time
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import shutil
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import yaml

from api import convert, kinds
from api.errors import ApiError, NotFoundError
from api.pb import core_pb2
from bench.api import Profiler
from bench.harness import Processes, cpu_seconds, free_port
from client.api import Client

IMAGE = "localhost:5000/kubelite/busybox:1.35"
# Hollow nodes run containers of this image for a second, then they exit 0 (the Job's pods).
JOB_IMAGE = "localhost:5000/kubelite/busybox:job"
CREATE_CONCURRENCY = 64


class Cluster:
    """etcd, the apiserver, the controller-manager, the scheduler and N hollow nodes."""

    def __init__(self, workdir: Path, nodes: int, *, lease_renew: float = 1.0, grace: float = 4.0) -> None:
        self.workdir = workdir
        self.nodes = nodes
        self.lease_renew = lease_renew
        self.grace = grace
        self.processes = Processes(workdir)
        self.etcd_url = ""
        self.address = ""
        self.control_dir = workdir / "hollow-control"
        self.metrics_port = free_port()

    def start(self) -> None:
        self.etcd_url = self.processes.start_etcd()
        self.address = self.processes.start_apiserver(self.etcd_url,
                                                      extra=["--metrics-port", str(self.metrics_port)])
        self.processes.start("controller-manager", "controller-manager", "--server", self.address,
                             "--node-monitor-grace-period", str(self.grace), "--log-level", "warning")
        self.processes.start("scheduler", "scheduler", "--server", self.address, "--log-level", "warning")
        self.processes.start("hollow-nodes", "hollow-nodes", "--server", self.address, "--count", str(self.nodes),
                             "--control-dir", str(self.control_dir), "--lease-renew", str(self.lease_renew),
                             "--image-exits", f"{JOB_IMAGE}=0@1", "--log-level", "warning")

    def cpu(self) -> dict[str, float]:
        return self.processes.cpu()

    def calls(self) -> dict[str, float]:
        """The apiserver's requests so far by verb and resource ("create pods"; a CreateMany's objects counted one
        by one, as creates)."""
        text = urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10).read().decode()
        out: dict[str, float] = {}
        for line in text.splitlines():
            if line.startswith("apiserver_requests_total{"):
                labels, _, value = line.rpartition(" ")
                verb = labels.split('verb="', 1)[1].split('"', 1)[0]
                resource = labels.split('resource="', 1)[1].split('"', 1)[0] if 'resource="' in labels else ""
                key = f"{verb} {resource}".strip()
                out[key] = out.get(key, 0.0) + float(value)
        return out

    def cpu_exact(self) -> dict[str, float]:
        return {name: cpu_seconds(p.pid) for name, p in self.processes.procs.items()}

    def account(self) -> Account:
        return Account(self, self.cpu_exact(), self.calls())

    def stop(self) -> None:
        self.processes.stop_all()


@dataclass
class Account:
    """CPU per process and apiserver calls by verb from one moment on, per item (a pod) when read."""

    cluster: Cluster
    cpu0: dict[str, float]
    calls0: dict[str, float]

    def per_item(self, items: int) -> dict[str, Any]:
        cpu, calls = self.cluster.cpu_exact(), self.cluster.calls()
        return {
            "cpu_ms_per_pod": {k: round((cpu[k] - self.cpu0.get(k, 0.0)) * 1000 / items, 3) for k in cpu},
            "apiserver_calls_per_pod": {k: round((v - self.calls0.get(k, 0.0)) / items, 2)
                                        for k, v in sorted(calls.items()) if v > self.calls0.get(k, 0.0)},
        }


def manifest(text: str) -> Any:
    return kinds.unwrap(convert.manifest_to_object(yaml.safe_load(text)))


def deployment(name: str, replicas: int, *, image: str = IMAGE, extra: str = "") -> Any:
    return manifest(f"""
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, namespace: default}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: {name}}}}}
  strategy: {{type: RollingUpdate, rollingUpdate: {{maxSurge: 25%, maxUnavailable: 25%}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      terminationGracePeriodSeconds: 1{extra}
      containers:
      - name: web
        image: {image}
        ports: [{{name: http, containerPort: 8080}}]
""")


def is_ready(pod: core_pb2.Pod) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions)


@dataclass
class PodWatch:
    """A watch on one app's pods: counts now, extremes seen, and when pods were first seen."""

    app: str
    pods: dict[str, core_pb2.Pod] = field(default_factory=dict)
    first_added: dict[str, float] = field(default_factory=dict)
    first_bound: dict[str, float] = field(default_factory=dict)
    first_ready: dict[str, float] = field(default_factory=dict)
    max_total: int = 0
    min_ready: int = 10**9
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    tracking: bool = False

    @property
    def ready(self) -> int:
        return sum(1 for p in self.pods.values() if not p.metadata.HasField("deletion_timestamp") and is_ready(p))

    def ready_on_other_nodes(self, node: str) -> int:
        return sum(1 for p in self.pods.values() if not p.metadata.HasField("deletion_timestamp") and is_ready(p)
                   and p.spec.node_name != node)

    def apply(self, type_: str, pod: core_pb2.Pod) -> None:
        name = pod.metadata.name
        if type_ == "DELETED":
            self.pods.pop(name, None)
        else:
            self.pods[name] = pod
            at = time.monotonic()
            self.first_added.setdefault(name, at)
            if pod.spec.node_name:
                self.first_bound.setdefault(name, at)
            if is_ready(pod):
                self.first_ready.setdefault(name, at)
        if self.tracking:
            self.max_total = max(self.max_total, len(self.pods))
            self.min_ready = min(self.min_ready, self.ready)
        self.changed.set()

    def track(self) -> None:
        self.tracking = True
        self.max_total = len(self.pods)
        self.min_ready = self.ready

    async def run(self, client: Client) -> None:
        while True:
            try:
                listed = await client.list("pods", "default", label_selector=f"app={self.app}")
                self.pods = {p.metadata.name: p for p in listed.items}
                async for ev in client.watch("pods", "default", resource_version=listed.resource_version,
                                             label_selector=f"app={self.app}"):
                    if ev.type != "BOOKMARK":
                        self.apply(ev.type, ev.object)  # type: ignore[arg-type]
            except ApiError:
                await asyncio.sleep(0.2)

    async def until(self, check: Any, timeout: float) -> float:
        """Wait until `check()` holds; returns time.monotonic() when it first did."""
        deadline = time.monotonic() + timeout
        while not check():
            self.changed.clear()
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("condition not met in time")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(left, 0.5)):
                    await self.changed.wait()
        return time.monotonic()


async def poll(check: Any, timeout: float, interval: float = 0.05) -> float:
    deadline = time.monotonic() + timeout
    while True:
        if await check():
            return time.monotonic()
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(interval)


async def rollout_complete(client: Client, name: str) -> bool:
    d = await client.get("deployments", name, "default")
    s, r = d.status, d.spec.replicas
    return (s.observed_generation >= d.metadata.generation and s.updated_replicas == r and s.replicas == r
            and s.available_replicas == r)


async def baseline_creates(client: Client, count: int) -> float:
    """Raw apiserver pod creates/s: bare pods nobody schedules, in their own namespace (deleted afterwards)."""
    await client.create(core_pb2.Namespace(metadata={"name": "baseline"}))
    pods = []
    for i in range(count):
        p = core_pb2.Pod(metadata={"name": f"raw-{i:05d}", "namespace": "baseline"})
        p.spec.scheduler_name = "nobody"
        p.spec.containers.add(name="c", image=IMAGE)
        pods.append(p)
    it = iter(pods)

    async def worker() -> None:
        for p in it:
            await client.create(p)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CREATE_CONCURRENCY)))
    rate = count / (time.perf_counter() - start)
    await client.delete("namespaces", "baseline")

    async def gone() -> bool:
        try:
            await client.get("namespaces", "baseline")
        except NotFoundError:
            return True
        return False

    await poll(gone, 120, 0.5)
    return rate


async def scenario_controller_only(client: Client, replicas: int) -> dict[str, Any]:
    """The controllers' own creation rate: a Deployment whose pods no scheduler takes, so nothing else writes."""
    watch = PodWatch("unscheduled")
    watcher = asyncio.create_task(watch.run(client))
    try:
        await asyncio.sleep(0.2)
        start = time.monotonic()
        await client.create(deployment("unscheduled", replicas, extra="\n      schedulerName: nobody"))
        last = await watch.until(lambda: len(watch.pods) >= replicas, 300)
    finally:
        watcher.cancel()
    await client.delete("deployments", "unscheduled", "default")
    await poll(lambda: _no_pods(client, "unscheduled"), 300, 0.5)
    return {"replicas": replicas, "seconds_to_all_pods_created": round(last - start, 2),
            "pods_created_per_second": round(replicas / (last - start), 1)}


class CpuSampler:
    """Each process's CPU seconds (the daemons', and this one's as "bench") every `period`, while running."""

    def __init__(self, cluster: Cluster, period: float = 0.1) -> None:
        self.cluster, self.period = cluster, period
        self.samples: list[tuple[float, dict[str, float]]] = []

    async def run(self) -> None:
        while True:
            self.samples.append((time.monotonic(), {**self.cluster.cpu_exact(), "bench": cpu_seconds(os.getpid())}))
            await asyncio.sleep(self.period)


def plot_create(path: Path, start: float, watch: PodWatch, cpu: CpuSampler, seconds: float) -> None:
    """The create phase over time: pods created, bound and Ready (seen by a watch) above, each process's CPU
    (cores in use, stacked) below."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 6.5), sharex=True)
    for label, seen in (("created", watch.first_added), ("bound", watch.first_bound), ("Ready", watch.first_ready)):
        times = sorted(t - start for t in seen.values())
        top.step(times, range(1, len(times) + 1), where="post", label=label)
    top.axvline(seconds, color="grey", linestyle="--", label=f"available ({seconds:.2f} s)")
    top.axvline(2.5, color="red", linestyle=":", label="target (2.5 s)")
    top.set_ylabel("pods")
    top.legend(loc="lower right")
    top.set_title(f"{len(watch.first_added)}-replica Deployment on hollow nodes")
    samples = [(t - start, c) for t, c in cpu.samples]
    names = sorted(samples[0][1]) if samples else []
    mids = [(a[0] + b[0]) / 2 for a, b in itertools.pairwise(samples)]
    rates = [[(b[1][n] - a[1][n]) / max(1e-6, b[0] - a[0]) for a, b in itertools.pairwise(samples)]
             for n in names]
    bottom.stackplot(mids, rates, labels=names, step="mid")
    bottom.axhline(os.cpu_count() or 1, color="black", linewidth=0.8)
    bottom.set_ylabel("CPU (cores)")
    bottom.set_xlabel("seconds since the Deployment was created")
    bottom.legend(loc="upper right", fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


async def scenario_create(client: Client, replicas: int, watch: PodWatch) -> tuple[float, dict[str, Any]]:
    """When the create began (for the plot) and its figures."""
    start = time.monotonic()
    await client.create(deployment("web", replicas))
    all_ready = asyncio.create_task(watch.until(lambda: watch.ready >= replicas, 300))
    available_at = await poll(lambda: rollout_complete(client, "web"), 300)
    ready_at = await all_ready
    added = sorted(watch.first_added.values())
    first, last = added[0], added[-1]
    return start, {
        "replicas": replicas,
        "seconds_to_available": round(available_at - start, 2),
        "seconds_to_last_pod_created": round(last - start, 2),
        "seconds_to_last_pod_bound": round(max(watch.first_bound.values(), default=start) - start, 2),
        "seconds_to_all_pods_ready": round(ready_at - start, 2),
        "pods_created_per_second": round(len(added) / max(1e-6, last - start), 1),
        "first_pod_after_seconds": round(first - start, 3),
    }


async def scenario_rolling(client: Client, replicas: int, watch: PodWatch) -> dict[str, Any]:
    watch.track()
    d = await client.get("deployments", "web", "default")
    d.spec.template.spec.containers[0].image = "localhost:5000/kubelite/busybox:next"
    start = time.monotonic()
    await client.update(d)
    done = await poll(lambda: rollout_complete(client, "web"), 300)
    watch.tracking = False
    return {
        "seconds": round(done - start, 2),
        "max_pods_seen": watch.max_total, "bound_max_pods": replicas + -(-replicas * 25 // 100),
        "min_ready_seen": watch.min_ready, "bound_min_ready": replicas - replicas * 25 // 100,
    }


async def scenario_indexed_job(client: Client, completions: int) -> dict[str, Any]:
    """One Indexed Job of `completions` pods, all in parallel, each exiting 0 a second after it starts."""
    job = manifest(f"""
apiVersion: batch/v1
kind: Job
metadata: {{name: work, namespace: default}}
spec:
  completions: {completions}
  parallelism: {completions}
  completionMode: Indexed
  template:
    spec:
      restartPolicy: Never
      terminationGracePeriodSeconds: 1
      containers: [{{name: c, image: "{JOB_IMAGE}"}}]
""")
    start = time.monotonic()
    await client.create(job)

    async def complete() -> bool:
        j = await client.get("jobs", "work", "default")
        return any(c.type == "Complete" and c.status == "True" for c in j.status.conditions)

    done = await poll(complete, 600, 0.1)
    final = await client.get("jobs", "work", "default")
    out = {"completions": completions, "seconds_to_complete": round(done - start, 2),
           "succeeded": final.status.succeeded, "completed_indexes": final.status.completed_indexes}
    await client.delete("jobs", "work", "default", propagation_policy="Background")

    async def no_job_pods() -> bool:
        return not await client.list_all("pods", "default", label_selector="batch.kubernetes.io/job-name=work")

    await poll(no_job_pods, 300, 0.5)
    return out


async def scenario_daemonset(workdir: Path, nodes: int) -> dict[str, Any]:
    """A DaemonSet on a cluster of `nodes` hollow nodes: seconds from create to every daemon pod available."""
    await asyncio.to_thread(workdir.mkdir, parents=True, exist_ok=True)
    cluster = Cluster(workdir, nodes, lease_renew=10.0, grace=40.0)
    cluster.start()
    client = cluster.processes.client()
    try:
        async def nodes_ready() -> bool:
            listed = await client.list_all("nodes")
            return sum(1 for n in listed if any(c.type == "Ready" and c.status == "True"
                                                for c in n.status.conditions)) == nodes

        await poll(nodes_ready, 600, 1.0)
        await asyncio.sleep(2.0)  # let the scheduler and controllers see every node
        ds = manifest(f"""
apiVersion: apps/v1
kind: DaemonSet
metadata: {{name: agent, namespace: kube-system}}
spec:
  selector: {{matchLabels: {{app: agent}}}}
  template:
    metadata: {{labels: {{app: agent}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers: [{{name: agent, image: "{IMAGE}"}}]
""")
        start = time.monotonic()
        await client.create(ds)

        async def available() -> bool:
            st = (await client.get("daemonsets", "agent", "kube-system")).status
            return st.desired_number_scheduled == nodes and st.number_available == nodes

        done = await poll(available, 600, 0.1)
        return {"nodes": nodes, "seconds_to_all_available": round(done - start, 2), "target_seconds": 10.0,
                "met": done - start <= 10.0, "cpu_seconds": cluster.cpu()}
    finally:
        await client.close()
        cluster.stop()


async def set_unschedulable(client: Client, names: list[str], value: bool) -> None:
    async def one(name: str) -> None:
        for _ in range(10):
            n = await client.get("nodes", name, "")
            n.spec.unschedulable = value
            try:
                await client.update(n)
                return
            except ApiError:
                await asyncio.sleep(0.05)

    sem = asyncio.Semaphore(32)

    async def limited(name: str) -> None:
        async with sem:
            await one(name)

    await asyncio.gather(*(limited(n) for n in names))


async def scenario_node_loss(client: Client, cluster: Cluster, pods: int, node_names: list[str]) -> dict[str, Any]:
    """100 pods on one node, that node's kubelet stopped: how long until all are Ready elsewhere."""
    target, others = node_names[0], node_names[1:]
    await set_unschedulable(client, others, True)
    watch = PodWatch("loss")
    watcher = asyncio.create_task(watch.run(client))
    try:
        await client.create(deployment("loss", pods))
        svc = core_pb2.Service(metadata={"name": "loss", "namespace": "default"})
        svc.spec.selector["app"] = "loss"
        svc.spec.ports.add(name="http", port=80, target_port="http")
        await client.create(svc)
        await poll(lambda: rollout_complete(client, "loss"), 300)
        placed = {p.spec.node_name for p in watch.pods.values()}
        await set_unschedulable(client, others, False)
        await asyncio.sleep(2.0)  # let the scheduler see the uncordoned nodes

        start = time.monotonic()
        (cluster.control_dir / f"{target}.stop").touch()

        async def node_unknown() -> bool:
            n = await client.get("nodes", target, "")
            return any(c.type == "Ready" and c.status == "Unknown" for c in n.status.conditions)

        async def endpoints_clean() -> bool:
            ep = await client.get("endpoints", "loss", "default")
            addrs = [a for s in ep.subsets for a in s.addresses]
            return len(addrs) == pods and all(a.node_name != target for a in addrs)

        unknown_task = asyncio.create_task(poll(node_unknown, 60, 0.05))
        evicted_at = await watch.until(
            lambda: sum(1 for p in watch.pods.values() if p.spec.node_name == target
                        and not p.metadata.HasField("deletion_timestamp")) == 0, 60)
        ready_at = await watch.until(lambda: watch.ready_on_other_nodes(target) >= pods, 120)
        endpoints_at = await poll(endpoints_clean, 60, 0.05)
        unknown_at = await unknown_task
    finally:
        watcher.cancel()
        with contextlib.suppress(OSError):
            (cluster.control_dir / f"{target}.stop").unlink()
    return {
        "pods_on_node": pods, "placed_on": sorted(placed),
        "seconds_to_node_unknown": round(unknown_at - start, 2),
        "seconds_to_pods_evicted": round(evicted_at - start, 2),
        "seconds_to_replacements_ready": round(ready_at - start, 2),
        "seconds_to_endpoints_without_node": round(endpoints_at - start, 2),
    }


async def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    cluster = Cluster(workdir, args.nodes)
    cluster.start()
    client = cluster.processes.client()
    try:
        async def nodes_ready() -> bool:
            nodes = await client.list_all("nodes")
            return sum(1 for n in nodes if any(c.type == "Ready" and c.status == "True"
                                                 for c in n.status.conditions)) == args.nodes

        await poll(nodes_ready, 180, 0.5)
        node_names = sorted(n.metadata.name for n in await client.list_all("nodes"))
        out: dict[str, Any] = {"nodes": args.nodes, "replicas": args.replicas, "cpus": os.cpu_count()}
        out["baseline"] = {"apiserver_pod_creates_per_second": round(await baseline_creates(client, 1000), 1)}
        only = await scenario_controller_only(client, args.replicas)
        only["vs_raw"] = round(only["pods_created_per_second"] / out["baseline"]["apiserver_pod_creates_per_second"], 2)
        out["controller_only"] = only

        watch = PodWatch("web")
        watcher = asyncio.create_task(watch.run(client))
        try:
            account = cluster.account()
            profilers = [Profiler(args.profile, cluster.processes.procs[name].pid, f"create-{name}")
                         for name in ("apiserver", "hollow-nodes")] if args.profile else []
            sampler = CpuSampler(cluster)
            sampling = asyncio.create_task(sampler.run())
            try:
                start, out["create"] = await scenario_create(client, args.replicas, watch)
            finally:
                sampling.cancel()
                for p in profilers:
                    p.stop()
            if args.plot:
                plot_create(args.plot, start, watch, sampler, out["create"]["seconds_to_available"])
            out["create"].update(account.per_item(args.replicas))
            out["create"]["target_seconds"] = 2.5
            out["create"]["met"] = out["create"]["seconds_to_available"] <= 2.5
            out["create"]["created_vs_raw"] = round(out["create"]["pods_created_per_second"]
                                                    / out["baseline"]["apiserver_pod_creates_per_second"], 2)
            out["rolling_update"] = await scenario_rolling(client, args.replicas, watch)
        finally:
            watcher.cancel()
        await client.delete("deployments", "web", "default")
        await poll(lambda: _no_pods(client, "web"), 300, 0.5)
        job = await scenario_indexed_job(client, args.replicas)
        job["replicaset_seconds_to_available"] = out["create"]["seconds_to_available"]
        job["vs_replicaset"] = round(job["seconds_to_complete"] / max(1e-6, out["create"]["seconds_to_available"]), 2)
        out["indexed_job"] = job
        if not args.skip_loss:
            out["node_loss"] = await scenario_node_loss(client, cluster, args.loss_pods, node_names)
            out["node_loss"]["target_seconds"] = 10.0
            out["node_loss"]["met"] = out["node_loss"]["seconds_to_replacements_ready"] <= 10.0
        out["cpu_seconds"] = cluster.cpu()
    finally:
        await client.close()
        cluster.stop()
    if args.daemon_nodes:
        out["daemonset"] = await scenario_daemonset(workdir / "daemonset", args.daemon_nodes)
    return out


async def _no_pods(client: Client, app: str) -> bool:
    return not await client.list_all("pods", "default", label_selector=f"app={app}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, default=100)
    parser.add_argument("--replicas", type=int, default=1000)
    parser.add_argument("--loss-pods", type=int, default=100, help="pods placed on the node that is lost")
    parser.add_argument("--skip-loss", action="store_true")
    parser.add_argument("--daemon-nodes", type=int, default=1000,
                        help="hollow nodes of the DaemonSet cluster (0: skip it)")
    parser.add_argument("--profile", default="",
                        help="directory for py-spy raw profiles of the apiserver and the hollow nodes during create")
    parser.add_argument("--plot", type=Path, default=None,
                        help="draw the create phase (pods created, bound, Ready; CPU per process) to this PNG")
    parser.add_argument("--keep-logs", type=Path, default=None, help="keep the daemons' logs in this directory")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="kubelite-cm-bench-"))
    try:
        result = asyncio.run(run(args, workdir))
    finally:
        if args.keep_logs is not None:
            args.keep_logs.mkdir(parents=True, exist_ok=True)
            for log in workdir.rglob("*.log"):
                shutil.copy(log, args.keep_logs / f"{log.parent.name}-{log.name}" if log.parent != workdir
                            else args.keep_logs / log.name)
        shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
