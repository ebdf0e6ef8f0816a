"""`down` while things vanish underneath it (root): processes killed, cgroups and namespaces removed by someone else
in the middle of the teardown. It never stops half-way, and nothing of the cluster is left."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import threading
import time
from pathlib import Path

from deploy.lab import Supervisor, apply_topology, plan_lab
from deploy.lab.cluster import down, leftovers, start_watchdog
from deploy.lab.procs import cgroup2_root, cgroup_dirs, cgroup_pids

from .conftest import unused_cluster_name

# A daemon that spreads children over sub-cgroups of its own, in sessions of their own, as containerd's shims and
# pods do (so only the cgroup finds them), and leaves empty cgroups about.
FORKER = """
for i in 1 2 3 4; do
  mkdir -p "$CG/sub$i/leaf"
  setsid sh -c 'echo $$ > "$1/cgroup.procs"; exec sleep 600' child "$CG/sub$i/leaf" &
  setsid sh -c 'echo $$ > "$1/cgroup.procs"; exec sleep 600' child "$CG/sub$i" &
  for j in 1 2 3 4 5 6 7 8; do mkdir -p "$CG/sub$i/empty$j/deeper"; done
done
exec sleep 600
"""


def _build(name: str, daemons: int) -> None:
    """A cluster's footprint without its software: namespaces, supervised daemons in nested cgroups (with the
    watchdog reviving them), node directories and files."""
    plan = plan_lab(name, 2)
    apply_topology(plan)
    sup = Supervisor.for_plan(plan)
    start_watchdog(plan, sup)
    for i in range(daemons):
        cg = cgroup2_root() / f"{plan.cgroup}/daemons/forker-{i}"
        netns = plan.nodes[i % 2].netns
        sup.start(f"forker-{i}", ["sh", "-c", FORKER], netns=netns, env={"CG": str(cg)})
    for node in plan.nodes:
        d = plan.paths.data_dir / "nodes" / node.role / "containerd" / "root"
        d.mkdir(parents=True)
        for j in range(50):
            (d / f"file{j}").write_text("x")
    deadline = time.monotonic() + 10
    while len(cgroup_pids(plan.cgroup)) < daemons * 9 + 1:
        assert time.monotonic() < deadline, "the daemons' children did not start"
        time.sleep(0.05)


def _pids(top: Path) -> set[int]:
    found = set()
    for dirpath, _, _ in os.walk(top):
        with contextlib.suppress(OSError):
            found.update(int(p) for p in Path(dirpath, "cgroup.procs").read_text().split())
    return found


def _vandal(name: str, stop: threading.Event, done: list[str]) -> None:
    """Kill the cluster's processes and remove its cgroups, namespaces and files at random, until stopped."""
    plan = plan_lab(name, 2)
    rng = random.Random(7)
    while not stop.is_set():
        for top in cgroup_dirs(plan.cgroup):
            pids = sorted(_pids(top))
            for pid in rng.sample(pids, min(len(pids), 3)):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                    done.append("process")
            for dirpath, _, _ in sorted(os.walk(top), key=lambda w: -len(w[0])):
                if rng.random() < 0.5:
                    with contextlib.suppress(OSError):
                        os.rmdir(dirpath)
                        done.append("cgroup")
        if rng.random() < 0.05:
            netns = rng.choice(plan.nodes).netns
            if os.system(f"ip netns delete {netns} 2>/dev/null") == 0:
                done.append("namespace")
        for dirpath, _, files in os.walk(plan.paths.data_dir / "nodes") if rng.random() < 0.2 else ():
            for f in files:
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(dirpath, f))
                    done.append("file")


def test_down_finishes_while_everything_vanishes_underneath() -> None:
    """Several rounds of: a cluster with many processes and cgroups, `down` racing a thread that kills its
    processes and removes its cgroups, namespaces and files. `down` never raises, reports nothing left,
    and nothing of the cluster is on the machine afterwards."""
    name = unused_cluster_name()
    vandalism: list[str] = []
    try:
        for _ in range(4):
            _build(name, daemons=8)
            stop = threading.Event()
            vandal = threading.Thread(target=_vandal, args=(name, stop, vandalism), daemon=True)
            vandal.start()
            try:
                report = asyncio.run(down(name, progress=lambda _: None))
            finally:
                stop.set()
                vandal.join(10)
            assert report.found
            assert report.left == [], report
            assert leftovers(plan_lab(name, 0)) == []
            assert not Path(f"/run/kubelite/{name}").exists() and not Path(f"/var/lib/kubelite/{name}").exists()
    finally:
        asyncio.run(down(name, progress=lambda _: None))
    assert {"process", "cgroup"} <= set(vandalism), "the race never happened"


def test_cgroup_walk_survives_cgroups_removed_during_it() -> None:
    """Reading every cgroup.procs of a tree whose cgroups are created and removed meanwhile never fails (a cgroup
    removed between open and read answers ENODEV)."""
    name = unused_cluster_name()
    top = cgroup2_root() / f"kubelite/{name}"
    stop = threading.Event()

    def churn() -> None:
        while not stop.is_set():
            for i in range(20):
                with contextlib.suppress(OSError):
                    (top / f"c{i}").mkdir(parents=True)
            for i in range(20):
                with contextlib.suppress(OSError):
                    (top / f"c{i}").rmdir()

    thread = threading.Thread(target=churn, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 3
        walks = 0
        while time.monotonic() < deadline:
            assert cgroup_pids(f"kubelite/{name}") == set()
            walks += 1
    finally:
        stop.set()
        thread.join(5)
        for sub in sorted(top.glob("*"), reverse=True):
            with contextlib.suppress(OSError):
                sub.rmdir()
        with contextlib.suppress(OSError):
            top.rmdir()
    assert walks > 100
