"""Scheduler throughput and latency through a real apiserver over a real etcd (JSON to stdout).

For each scenario: start etcd (temp dir, free port), `kubelite apiserver` and
`kubelite scheduler` as separate processes; register hollow Node objects (no
kubelet); create pods with requests concurrently (as `apply` does); watch the
binds. Reported per scenario:

- pods_per_second: bound pods per second from the first bind to the last, as
  seen through a watch;
- latency p50/p99: pod creationTimestamp to bind seen;
- etcd_txn_per_second: raw single-key compare-and-put transactions/s against
  the same etcd in the same run (the ceiling for any write path);
- apiserver_create_per_second: pod creates/s the apiserver accepted in this run;
- overcommit: the independent checker's verdict on the final objects.

Two modes per scenario: `stream` creates pods while the scheduler runs (what a
user sees), `backlog` creates them first and then starts the scheduler (the
scheduler's own throughput, without pod creation competing for the apiserver
and the two CPUs).

Pods are created as `kubelite apply` sends a big file (CreateMany calls of 250,
4 in flight); `--unary-creates` sends one Create each, 64 in flight, as apply
did before. The scheduler sends the binds it has in flight together in BindMany
calls (scheduler/binder.py). Measured on this 2-CPU machine, 5000x10000, one
run each:

    before BindMany, unary creates:  stream  457 pods/s   backlog  921 pods/s
                                     apiserver 0.90 ms, etcd 0.49 ms, scheduler 0.56 ms of CPU per bind (backlog)
    BindMany, unary creates:         stream  689 pods/s   backlog 2813 pods/s
                                     apiserver 0.24 ms, etcd 0.14 ms, scheduler 0.23 ms of CPU per bind (backlog)
    BindMany, creates as apply:      stream 1913 pods/s (creates 4514/s)

Per bind, a call of its own cost the apiserver its gRPC framing, authentication,
overload admission and a group-commit round of its own; in BindMany calls of
tens of binds those are shared, and etcd gets the binds in fewer, larger
transactions. Each bind is still authorized, applied, audited and answered on
its own.

    python bench/scheduler.py                      # both scenarios, both modes
    python bench/scheduler.py --scenario 5000x10000 --mode backlog --profile /tmp/prof
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aetcd import rpc

from api import kinds
from api.errors import ApiError
from api.pb import core_pb2
from bench.harness import BIN, Processes, cpu_seconds
from client.api import Client
from scheduler.overcommit import compute_overcommit

CREATE_CONCURRENCY = 64
# As `kubelite apply` sends a big file (cli/apply.py).
APPLY_CHUNK = 250
APPLY_IN_FLIGHT = 4
SCENARIOS = {"500x5000": (500, 5000), "5000x10000": (5000, 10000)}


def start_profiler(pid: int, path: str) -> subprocess.Popen:
    """py-spy sampling a process into a raw (collapsed stacks) file."""
    return subprocess.Popen([str(BIN / "py-spy"), "record", "-p", str(pid), "-o", path, "-f", "raw", "-r", "100",
                             "--nonblocking"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def measure_etcd_txn(cluster: Processes, seconds: float = 3.0, concurrency: int = 64) -> float:
    """Single-key compare-and-put transactions per second (what one apiserver write costs etcd)."""
    c = cluster.etcd_connection()
    try:
        stop = time.perf_counter() + seconds
        done = 0

        async def worker(w: int) -> None:
            nonlocal done
            key = f"/bench/txn/{w}".encode()
            rev = 0
            while time.perf_counter() < stop:
                req = rpc.TxnRequest(
                    compare=[rpc.Compare(key=key, result=rpc.Compare.EQUAL, target=rpc.Compare.MOD,
                                         mod_revision=rev)],
                    success=[rpc.RequestOp(request_put=rpc.PutRequest(key=key, value=b"x" * 600))],
                    failure=[rpc.RequestOp(request_range=rpc.RangeRequest(key=key))])
                resp = await c.kvstub.Txn(req, timeout=10)
                rev = resp.header.revision if resp.succeeded else resp.responses[0].response_range.kvs[0].mod_revision
                done += 1

        start = time.perf_counter()
        await asyncio.gather(*(worker(i) for i in range(concurrency)))
        elapsed = time.perf_counter() - start
        await c.kvstub.DeleteRange(rpc.DeleteRangeRequest(key=b"/bench/", range_end=b"/bench0"), timeout=10)
    finally:
        await c.close()
    return done / elapsed


def hollow_node(i: int, rng: random.Random) -> core_pb2.Node:
    cpu, mem = rng.choice([("4", "16Gi"), ("8", "32Gi"), ("16", "64Gi")])
    n = core_pb2.Node(metadata={"name": f"hollow-{i:05d}",
                                "labels": {"topology.kubernetes.io/zone": f"zone-{i % 3}"}})
    alloc = {"cpu": cpu, "memory": mem, "pods": "110", "ephemeral-storage": "100Gi"}
    n.status.capacity.update(alloc)
    n.status.allocatable.update(alloc)
    n.status.conditions.add(type="Ready", status="True", reason="KubeletReady")
    return n


def bench_pod(i: int, rng: random.Random) -> core_pb2.Pod:
    p = core_pb2.Pod(metadata={"name": f"pod-{i:06d}", "namespace": "default", "labels": {"app": f"app-{i % 50}"}})
    p.metadata.owner_references.add(api_version="apps/v1", kind="ReplicaSet", name=f"rs-{i % 50}",
                                    uid=f"rs-uid-{i % 50}", controller=True)
    c = p.spec.containers.add(name="main", image="registry.local/app:1")
    c.resources.requests["cpu"] = rng.choice(["100m", "250m", "500m"])
    c.resources.requests["memory"] = rng.choice(["128Mi", "256Mi", "512Mi"])
    return p


async def create_all(client: Client, objs: list, concurrency: int = CREATE_CONCURRENCY) -> float:
    """Create every object with `concurrency` requests in flight; returns objects/s."""
    it = iter(objs)

    async def worker() -> None:
        for obj in it:
            for _ in range(5):
                try:
                    await client.create(obj)
                    break
                except ApiError:
                    await asyncio.sleep(0.1)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return len(objs) / (time.perf_counter() - start)


async def create_batched(client: Client, objs: list, chunk: int = APPLY_CHUNK,
                         in_flight: int = APPLY_IN_FLIGHT) -> float:
    """Create every object as `kubelite apply` sends a big file: CreateMany calls of `chunk` objects, `in_flight`
    at once (an object refused under load is sent again); returns objects/s."""
    chunks = [objs[i:i + chunk] for i in range(0, len(objs), chunk)]
    slots = asyncio.Semaphore(in_flight)

    async def send(part: list) -> None:
        async with slots:
            for _ in range(5):
                answers = await client.create_many([kinds.wrap(o) for o in part])
                part = [o for o, a in zip(part, answers, strict=True) if isinstance(a, ApiError)]
                if not part:
                    return
                await asyncio.sleep(0.1)

    start = time.perf_counter()
    await asyncio.gather(*(send(c) for c in chunks))
    return len(objs) / (time.perf_counter() - start)


class BindWatch:
    """Follows pods through a watch; records when each is first seen bound."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.first_bind = asyncio.Event()
        self.bound_at: dict[str, float] = {}
        self.nodes_seen: dict[str, set[str]] = {}
        self.created_at: dict[str, float] = {}
        self.done = asyncio.Event()
        self.expected = 0

    async def run(self) -> None:
        async for ev in self.client.watch("pods", "default"):
            if ev.type == "BOOKMARK":
                continue
            p = ev.object
            name = p.metadata.name
            if name not in self.created_at:
                ts = p.metadata.creation_timestamp
                self.created_at[name] = ts.seconds + ts.nanos / 1e9
            if p.spec.node_name:
                self.nodes_seen.setdefault(name, set()).add(p.spec.node_name)
            if p.spec.node_name and name not in self.bound_at:
                self.bound_at[name] = time.time()
                self.first_bind.set()
                if self.expected and len(self.bound_at) >= self.expected:
                    self.done.set()


async def run_scenario(n_nodes: int, n_pods: int, mode: str, *, seed: int, timeout: float,
                       scheduler_args: list[str], profile: str, keep: bool = False,
                       unary_creates: bool = False) -> dict:
    rng = random.Random(seed)
    workdir = Path(tempfile.mkdtemp(prefix="kubelite-bench-"))
    cluster = Processes(workdir)
    spies: list[subprocess.Popen] = []
    try:
        cluster.start_etcd()
        cluster.start_apiserver(cluster.etcd_url)
        client = cluster.client()
        for _ in range(300):
            try:
                await client.list("nodes", limit=1)
                break
            except ApiError:
                await asyncio.sleep(0.1)
        # Measured with the apiserver up and idle (keys outside /registry/ do not reach it).
        etcd_txn = await measure_etcd_txn(cluster)
        nodes = [hollow_node(i, rng) for i in range(n_nodes)]
        await create_all(client, nodes)
        pods = [bench_pod(i, rng) for i in range(n_pods)]
        watch = BindWatch(client)
        watch.expected = n_pods
        async with asyncio.TaskGroup() as tg:
            watch_task = tg.create_task(watch.run())
            create_rate = 0.0
            create = create_all if unary_creates else create_batched
            if mode == "backlog":
                create_rate = await create(client, pods)
                cluster.start("scheduler", "scheduler", "--server", cluster.address, "--log-level", "info",
                              *scheduler_args)
            else:
                cluster.start("scheduler", "scheduler", "--server", cluster.address, "--log-level", "info",
                              *scheduler_args)
                await asyncio.sleep(2.0)  # let it win the lease and sync
            if mode == "backlog":
                # Count CPU from the first bind: the scheduler's start-up (imports, the initial list) is not per pod.
                async with asyncio.timeout(timeout):
                    await watch.first_bind.wait()
            if profile:
                tag = f"{profile}-{n_nodes}x{n_pods}-{mode}"
                spies = [start_profiler(cluster.procs[name].pid, f"{tag}-{name}.txt")
                         for name in ("scheduler", "apiserver")]
            cpu_start = {name: cpu_seconds(p.pid) for name, p in cluster.procs.items()}
            cpu_start["bench"] = time.process_time()
            bound_before = len(watch.bound_at)
            if mode == "stream":
                create_rate = await create(client, pods)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await watch.done.wait()
            cpu_used = {name: cpu_seconds(p.pid) - cpu_start[name] for name, p in cluster.procs.items()}
            cpu_used["bench"] = time.process_time() - cpu_start["bench"]
            bound_during = len(watch.bound_at) - bound_before
            for spy in spies:
                spy.send_signal(signal.SIGINT)
                spy.wait(30)
            watch_task.cancel()
        final_nodes = await client.list_all("nodes")
        final_pods = await client.list_all("pods", "default")
        await client.close()
    finally:
        cluster.stop_all()
        if keep:
            print(f"logs kept in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    times = sorted(watch.bound_at.values())
    bound = len(times)
    span = times[-1] - times[0] if bound > 1 else 0.0
    latencies = sorted(watch.bound_at[n] - watch.created_at[n] for n in watch.bound_at if n in watch.created_at)
    overcommit = compute_overcommit(final_nodes, final_pods)
    # A pod seen on two nodes would have been bound twice (Bind refuses it; this checks from outside).
    double_bound = sum(1 for seen in watch.nodes_seen.values() if len(seen) > 1)
    names = {p.metadata.name for p in final_pods if p.spec.node_name}
    return {
        "nodes": n_nodes,
        "pods": n_pods,
        "mode": mode,
        "bound": bound,
        "bound_in_final_list": len(names),
        "double_bound": double_bound,
        "pods_per_second": round((bound - 1) / span, 1) if span > 0 else None,
        "bind_span_seconds": round(span, 2),
        "latency_p50_seconds": round(statistics.median(latencies), 3) if latencies else None,
        "latency_p99_seconds": round(latencies[int(len(latencies) * 0.99) - 1], 3) if latencies else None,
        "etcd_txn_per_second": round(etcd_txn, 1),
        # CPU each process spent per pod bound while it was measured (stream: from the first create, so creating
        # the pods counts too; backlog: from the first bind): robust to other load on the machine, and it says
        # where the time goes.
        "cpu_ms_per_pod": {k: round(v * 1000 / max(1, bound_during), 3) for k, v in cpu_used.items()},
        "cpu_ms_per_pod_total": round(sum(cpu_used.values()) * 1000 / max(1, bound_during), 3),
        "apiserver_create_per_second": round(create_rate, 1),
        "creates": "one Create each" if unary_creates else "CreateMany, as apply",
        "overcommit": [str(o) for o in overcommit],
        "overcommit_ok": not overcommit,
    }


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--scenario", choices=[*SCENARIOS, "all"], default="all")
    ap.add_argument("--mode", choices=["stream", "backlog", "both"], default="both")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for every pod to be bound")
    ap.add_argument("--profile", default="", help="py-spy raw profiles of scheduler and apiserver to this prefix")
    ap.add_argument("--keep", action="store_true", help="keep the logs and data directory")
    ap.add_argument("--unary-creates", action="store_true",
                    help="create the pods with one Create each (64 in flight), as before apply batched them")
    ap.add_argument("scheduler_args", nargs="*", help="extra flags for `kubelite scheduler` (after --)")
    args = ap.parse_args()
    scenarios = list(SCENARIOS) if args.scenario == "all" else [args.scenario]
    modes = ["stream", "backlog"] if args.mode == "both" else [args.mode]
    results = []
    for name in scenarios:
        n_nodes, n_pods = SCENARIOS[name]
        for mode in modes:
            res = await run_scenario(n_nodes, n_pods, mode, seed=args.seed, timeout=args.timeout,
                                     scheduler_args=args.scheduler_args, profile=args.profile, keep=args.keep,
                                     unary_creates=args.unary_creates)
            print(json.dumps(res), file=sys.stderr)
            results.append(res)
    out = {"benchmark": "scheduler", "machine_cpus": os.cpu_count(), "target_pods_per_second": 1000,
           "results": results}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
