"""`kubelite up` → the demo → a chaos scenario → `kubelite down`, many times; nothing may be left, nothing may
print a traceback. Needs root. Prints one JSON line per cycle, then a summary; exits 1 if any cycle failed.

    python scripts/cycles.py [--cycles 20] [--nodes 2] [--name NAME]

The scenarios take turns: a partition, an apiserver restart (the pair after which `down` once crashed half-way),
a node loss, and SIGKILL of every node daemon at once. What is looked for afterwards is looked for by name on the
whole machine, independently of `down`'s own report: network namespaces, processes whose command line names the
cluster, mounts, cgroups and directories.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
KUBELITE = str(Path(sys.executable).with_name("kubelite"))
SCENARIOS = ("partition", "apiserver-restart", "node-loss", "kill-node-daemons")


def kubelite(*args: str, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([KUBELITE, *args], capture_output=True, text=True, env=env, timeout=timeout)


def leftovers(name: str) -> list[str]:
    """Everything on this machine that still carries the cluster's name."""
    found = []
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    found += [f"netns {line.split()[0]}" for line in netns.splitlines() if line.startswith(f"kl-{name}-")]
    for d in (Path("/run/kubelite") / name, Path("/var/lib/kubelite") / name):
        if d.exists():
            found.append(f"directory {d}")
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4]
        if f"/kubelite/{name}/" in point or point.endswith(f"/kubelite/{name}"):
            found.append(f"mount {point}")
    for root in Path("/sys/fs/cgroup").iterdir():
        for candidate in (root / "kubelite" / name, root / "unified" / "kubelite" / name):
            if candidate.is_dir():
                found.append(f"cgroup {candidate}")
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if f"/kubelite/{name}/" in cmd or f"kl-{name}-" in cmd:
            found.append(f"process {pid}: {cmd[:100]}")
    return sorted(set(found))


def kill_node_daemons(name: str, node: str) -> dict[str, Any]:
    """SIGKILL a node's containerd, kubelet and proxy at once; the watchdog must bring each back."""
    pid_dir = Path("/run/kubelite") / name / "pids"
    daemons = [f"containerd-{node}", f"kubelet-{node}", f"proxy-{node}"]
    before = {d: json.loads((pid_dir / f"{d}.json").read_text())["pid"] for d in daemons}
    for pid in before.values():
        os.kill(pid, signal.SIGKILL)
    start = time.monotonic()
    while time.monotonic() - start < 30:
        now = {}
        for d in daemons:
            try:
                now[d] = json.loads((pid_dir / f"{d}.json").read_text())["pid"]
            except (OSError, ValueError):
                now[d] = None
        if all(now[d] not in (None, before[d]) and Path(f"/proc/{now[d]}").exists() for d in daemons):
            return {"ok": True, "seconds_to_back": round(time.monotonic() - start, 2)}
        time.sleep(0.05)
    return {"ok": False, "notes": ["node daemons not back after 30 s"]}


def cycle(name: str, nodes: int, scenario: str, env: dict[str, str]) -> dict[str, Any]:
    result: dict[str, Any] = {"scenario": scenario, "ok": False, "problems": []}
    outputs = []
    started = time.monotonic()
    up = kubelite("up", "--nodes", str(nodes), "--name", name, env=env)
    outputs.append(up)
    result["up_s"] = round(time.monotonic() - started, 1)
    if up.returncode != 0:
        result["problems"].append(f"up exited {up.returncode}: {up.stderr.strip()[-300:]}")
    else:
        conn = {**env, "KUBELITE_CLUSTER": name}
        outputs.append(kubelite("apply", "-f", str(ROOT / "examples"), env=conn))
        outputs.append(kubelite("rollout", "status", "deployment/web", "--timeout", "120s", env=conn, timeout=150))
        t = time.monotonic()
        node = f"n{nodes}"
        if scenario == "kill-node-daemons":
            report = kill_node_daemons(name, node)
        else:
            args = ["chaos", "run", scenario, "--name", name, "--timeout", "60"]
            if scenario != "apiserver-restart":
                args += ["--node", node]
            run = kubelite(*args, env=conn, timeout=300)
            outputs.append(run)
            try:
                report = json.loads(run.stdout)
            except ValueError:
                report = {"ok": False, "notes": [run.stderr.strip()[-300:]]}
        result["scenario_s"] = round(time.monotonic() - t, 1)
        result["scenario_ok"] = report.get("ok", False)
    t = time.monotonic()
    down = kubelite("down", "--name", name, env=env)
    outputs.append(down)
    result["down_s"] = round(time.monotonic() - t, 1)
    if down.returncode != 0:
        result["problems"].append(f"down exited {down.returncode}: {down.stderr.strip()[-500:]}")
    traces = [" ".join(o.args[1:4]) for o in outputs if "Traceback" in o.stderr or "Traceback" in o.stdout]
    if traces:
        result["problems"].append(f"traceback from: {traces}")
    left = leftovers(name)
    if left:
        result["problems"].append(f"left behind: {left[:10]}")
    result["ok"] = not result["problems"]
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=20)
    parser.add_argument("--nodes", type=int, default=2)
    parser.add_argument("--name", default=f"cyc{secrets.token_hex(2)}")
    opts = parser.parse_args()
    if os.geteuid() != 0:
        print("needs root", file=sys.stderr)
        return 1
    env = {**os.environ, "KUBELITE_CONFIG": f"/tmp/kubelite-cycles-{opts.name}.yaml"}
    results = []
    started = time.monotonic()
    try:
        for i in range(opts.cycles):
            r = {"cycle": i + 1, **cycle(opts.name, opts.nodes, SCENARIOS[i % len(SCENARIOS)], env)}
            print(json.dumps(r), flush=True)
            results.append(r)
    finally:
        kubelite("down", "--name", opts.name, env=env)
        Path(env["KUBELITE_CONFIG"]).unlink(missing_ok=True)
    summary = {"cycles": len(results), "failed": sum(not r["ok"] for r in results),
               "scenarios_not_ok": sum(not r.get("scenario_ok", False) for r in results),
               "minutes": round((time.monotonic() - started) / 60, 1)}
    print(json.dumps(summary))
    return 0 if summary["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
