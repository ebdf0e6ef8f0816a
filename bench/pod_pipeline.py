"""The pod pipeline without a container runtime: create → kubelet → status stream → apiserver → watch (JSON).

Starts etcd, `kubelite apiserver` and one `kubelite kubelet --runtime fake`
(no containers start: what is measured is kubelite's own pipeline), creates
pods with spec.nodeName set one every --interval seconds, and reports, per
pod, seconds from just before Create to:

- `added`: the pod's ADDED event on a watch (the apiserver's write and watch
  path alone: the same-run baseline);
- `running`: the first event with phase Running and every container running.

`running` minus `added` is what the kubelet and the status stream add.
`--hollow N` runs the pods on N hollow nodes in one `kubelite hollow-nodes`
process instead (round robin), as the scale benchmarks do.

    python bench/pod_pipeline.py                 # 60 pods, one every 50 ms
    python bench/pod_pipeline.py --pods 200 --interval 0.02
    python bench/pod_pipeline.py --hollow 100
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from api.pb import core_pb2
from bench.harness import Processes
from bench.pod_startup import percentiles, wait_api, wait_node_ready
from client.api import Client
from kubelet.runtime.mounts import unmount_all

NODE = "pipeline-node"


def fake_pod(name: str, node: str) -> core_pb2.Pod:
    return core_pb2.Pod(metadata={"name": name, "namespace": "default", "labels": {"bench": "pipeline"}}, spec={
        "node_name": node, "termination_grace_period_seconds": 0,
        "containers": [{"name": "c", "image": "registry.local/pause:1"}]})


def _running(p: core_pb2.Pod) -> bool:
    return p.status.phase == "Running" and bool(p.status.container_statuses) and all(
        c.state.HasField("running") for c in p.status.container_statuses)


async def measure(client: Client, count: int, interval: float, nodes: list[str]) -> tuple[list[float], list[float]]:
    created: dict[str, float] = {}
    added: dict[str, float] = {}
    running: dict[str, float] = {}
    rv = (await client.list("pods", "default", limit=1)).resource_version
    done = asyncio.Event()

    async def watch() -> None:
        async for ev in client.watch("pods", "default", resource_version=rv, label_selector="bench=pipeline"):
            name, now = ev.object.metadata.name, time.monotonic()
            if ev.type == "ADDED":
                added.setdefault(name, now)
            if ev.type != "DELETED" and _running(ev.object) and name not in running:
                running[name] = now
                if len(running) == count:
                    done.set()
                    return

    watcher = asyncio.ensure_future(watch())
    try:
        await asyncio.sleep(0.2)  # the watch is open before the first create
        for i in range(count):
            name = f"p-{i}"
            created[name] = time.monotonic()
            await client.create(fake_pod(name, nodes[i % len(nodes)]))
            await asyncio.sleep(interval)
        async with asyncio.timeout(60):
            await done.wait()
    finally:
        watcher.cancel()
    return ([added[n] - created[n] for n in created if n in added], [running[n] - created[n] for n in created])


async def main(args: argparse.Namespace) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix="kubelite-bench-"))
    procs = Processes(workdir)
    result: dict = {"benchmark": "pod_pipeline", "pods": args.pods, "interval_s": args.interval, "hollow": args.hollow,
                    "load_average": {"start": list(os.getloadavg())}}
    try:
        procs.start_apiserver(procs.start_etcd())
        client = await wait_api(procs)
        if args.hollow:
            procs.start("hollow-nodes", "hollow-nodes", "--server", procs.address, "--count", str(args.hollow),
                        "--log-level", "warning")
            nodes = [f"hollow-{i}" for i in range(args.hollow)]
        else:
            nodes = [NODE]
            procs.start("kubelet", "kubelet", "--server", procs.address, *procs.kubelet_flags(NODE),
                        "--node-name", NODE, "--node-ip", "127.0.0.1", "--listen", "127.0.0.1:0",
                        "--cluster-dns", "10.96.0.10", "--root-dir", str(workdir / "kubelet"), "--runtime", "fake",
                        "--pod-cidr", "10.250.0.0/16", "--max-pods", str(args.pods + 10),
                        "--log-level", os.environ.get("BENCH_KUBELET_LOG", "warning"))
        for node in nodes:
            await wait_node_ready(client, node)
        await asyncio.sleep(1)
        added, running = await measure(client, args.pods, args.interval, nodes)
        result["baseline_create_to_added"] = percentiles(added)
        result["create_to_running"] = percentiles(running)
        result["kubelet_and_status_p50_ms"] = round(result["create_to_running"]["p50_ms"]
                                                    - result["baseline_create_to_added"]["p50_ms"], 1)
        result["target_p50_under_50ms"] = result["create_to_running"]["p50_ms"] < 50
        await client.close()
    finally:
        result["load_average"]["end"] = list(os.getloadavg())
        procs.stop_all()
        # The kubelet mounted a tmpfs for each pod's token and was stopped without removing its pods.
        left = unmount_all(workdir)  # mkdtemp gives an absolute path, as mountinfo has
        if left:
            print(f"still mounted under {workdir}: {', '.join(left)}", file=sys.stderr)
        if not os.environ.get("BENCH_KEEP"):
            shutil.rmtree(workdir, ignore_errors=True)
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=60)
    parser.add_argument("--interval", type=float, default=0.05)
    parser.add_argument("--hollow", type=int, default=0, help="hollow nodes in one process instead of one kubelet")
    print(json.dumps(asyncio.run(main(parser.parse_args())), indent=2))
