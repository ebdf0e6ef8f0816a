"""Seconds until the API takes writes again after losing part of the control plane (JSON to stdout). Not a test.

A lab with three control-plane machines (`kubelite up --control-planes 3`): a probe writes a
ConfigMap every 50 ms through the admin's config (every apiserver's socket, failing over by
itself) while one control-plane machine is stopped (each in turn), and while the etcd leader is
SIGKILLed; each figure is the time from the fault until the first acknowledged write after the
last failed or slow one. The baseline, measured in the same run, is a lab with one control plane
whose apiserver is SIGKILLed and started again by the watchdog: what losing the API costs without
a second apiserver. Every acknowledged write is checked afterwards. Needs root.

    python bench/ha.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from api import logs
from client.api import Client
from deploy.lab import cluster, failover
from deploy.lab import status as lab_status
from deploy.lab.procs import Supervisor

TARGET_S = 5.0


async def measure(plan, prefix: str, fault: Callable[[], Awaitable[object]]) -> dict[str, object]:  # type: ignore[no-untyped-def]
    conn = cluster.client_config_for(plan)
    probe = failover.WriteProbe(conn, prefix=prefix)
    async with asyncio.TaskGroup() as tg:
        tg.create_task(probe.run(10.0))
        await asyncio.sleep(1.0)
        t0 = time.monotonic()
        await fault()
    async with Client(conn) as client:
        stored = {cm.metadata.name for cm in (await client.list("configmaps", namespace="default")).items}
    took = probe.writable_after(t0)
    return {"seconds_to_writable": round(took, 3) if took is not None else None,
            "writes_acknowledged": len(probe.acknowledged), "writes_failed": len(probe.failed),
            "acknowledged_writes_lost": len(set(probe.acknowledged) - stored)}


async def wait_members_healthy(plan, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if all(m["healthy"] for m in await asyncio.to_thread(lab_status.etcd_members, plan)):
                return
        except RuntimeError:
            pass
        await asyncio.sleep(0.5)
    raise RuntimeError("etcd members not healthy again")


async def wait_writable(plan, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        probe = failover.WriteProbe(cluster.client_config_for(plan), prefix=f"ready-{secrets.token_hex(3)}",
                                    timeout=2.0)
        await probe.run(0.01)
        if probe.acknowledged:
            return
        if time.monotonic() > deadline:
            raise RuntimeError("the API did not take writes again")
        await asyncio.sleep(0.2)


async def ha_runs(rounds: int) -> dict[str, object]:
    name = f"bha{secrets.token_hex(2)}"
    plan = await cluster.up(name, 1, progress=lambda _: None, ingress_nodes=(), control_planes=3)
    stops: list[dict[str, object]] = []
    kills: list[dict[str, object]] = []
    try:
        for i in range(rounds):
            victim = plan.control_planes[i % len(plan.control_planes)].role
            result = await measure(plan, f"stop-{i}", lambda v=victim: cluster.stop_control_plane_machine(name, v))
            stops.append({"machine": victim, **result})
            await cluster.start_control_plane_machine(name, victim)
            await wait_members_healthy(plan)
        killed: list[str] = []

        async def kill() -> None:
            killed.append(await asyncio.to_thread(failover.kill_etcd_leader, plan))

        for i in range(rounds):
            result = await measure(plan, f"kill-{i}", kill)
            kills.append({"etcd_leader": killed[-1], **result})
            await wait_members_healthy(plan)
    finally:
        await cluster.down(name, progress=lambda _: None)
    return {"stop_one_of_three_control_planes": stops, "kill_etcd_leader": kills}


async def baseline_runs(rounds: int) -> list[dict[str, object]]:
    name = f"bhb{secrets.token_hex(2)}"
    plan = await cluster.up(name, 1, progress=lambda _: None, ingress_nodes=())
    runs = []
    try:
        sup = Supervisor.for_plan(plan)
        for i in range(rounds):
            async def kill() -> None:
                record = sup.get("apiserver")
                assert record is not None
                os.kill(record.pid, signal.SIGKILL)

            runs.append(await measure(plan, f"base-{i}", kill))
            await wait_writable(plan)
    finally:
        await cluster.down(name, progress=lambda _: None)
    return runs


def summary(runs: list[dict[str, object]]) -> dict[str, float | None]:
    took = [r["seconds_to_writable"] for r in runs if r["seconds_to_writable"] is not None]
    return {"median_s": round(statistics.median(took), 3) if took else None,  # type: ignore[arg-type]
            "max_s": max(took) if took else None,  # type: ignore[type-var]
            "lost_writes": sum(r["acknowledged_writes_lost"] for r in runs)}  # type: ignore[misc]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="faults of each kind")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/ha.py needs root")
    logs.configure("bench", level="warning")  # to stderr: stdout is the JSON
    with tempfile.TemporaryDirectory(prefix="kubelite-bench-ha-") as config_dir:  # the labs' config, gone after
        os.environ["KUBELITE_CONFIG"] = str(Path(config_dir) / "config.yaml")
        base = asyncio.run(baseline_runs(args.rounds))
        ha = asyncio.run(ha_runs(args.rounds))
    out = {
        "benchmark": "ha",
        "load_average_at_start": os.getloadavg(),
        "target_seconds_to_writable": TARGET_S,
        "baseline_one_control_plane_apiserver_killed": {"summary": summary(base), "runs": base},
        "three_control_planes_one_stopped": {"summary": summary(ha["stop_one_of_three_control_planes"]),  # type: ignore[arg-type]
                                             "runs": ha["stop_one_of_three_control_planes"]},
        "three_control_planes_etcd_leader_killed": {"summary": summary(ha["kill_etcd_leader"]),  # type: ignore[arg-type]
                                                    "runs": ha["kill_etcd_leader"]},
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
