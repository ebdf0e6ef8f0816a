"""Recovery from each chaos scenario on the lab, beside the same figures under Kubernetes' fault-detection
defaults (JSON to stdout). Not a test.

For each scenario it runs `kubelite chaos run SCENARIO --report DIR` as a user would (the demo under 50
requests/s, an API writer, the invariant watcher) and reads report.json: seconds from the fault to the API
writable again, to every replacement Ready, to the Service answering every request again, and the failed
requests. The same timeline is then re-read with Kubernetes' defaults (a node NotReady after 50 s without a
lease instead of the lab's 4 s, its pods evicted after a 300 s toleration instead of 2 s; see
chaos/timeline.py). The baseline, measured in the same run, is the workload before the first fault: its
success rate and median API write latency. Needs root; starts (and removes) a cluster of its own unless
--cluster names a running one with the demo applied. With three control-plane machines (`--control-planes 3`,
or a running cluster that has them) the control-plane scenarios (control-plane-stop, etcd-leader-kill,
control-plane-partition, scheduler-leader-kill-rollout) run too.

    python bench/chaos.py [--scenarios worker-stop,kubelet-kill,...] [--cluster NAME] [--control-planes 3]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chaos import timeline as tl  # noqa: E402
from chaos.plan import PARTITION, PAUSE, SCENARIOS, STOP_NODE  # noqa: E402

KUBELITE = str(Path(sys.executable).with_name("kubelite"))
DEFAULT = ("worker-stop", "containerd-kill", "kubelet-kill", "scheduler-kill-rollout", "apiserver-kill")


def default_scenarios(control_planes: int) -> list[str]:
    """The worker and single-control-plane scenarios, and those needing more machines when the lab has them."""
    more = [name for name, s in SCENARIOS.items() if 1 < s.control_planes <= control_planes]
    return [*DEFAULT, *more]


def run(*args: str, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([KUBELITE, *args], capture_output=True, text=True, timeout=timeout, env=env)


def figures(report: dict[str, Any]) -> dict[str, Any]:
    """The lab's recovery from the report, and the same timeline under Kubernetes' defaults."""
    fault = report["faults"][0]
    rec = fault["recovery"]
    lab = {"api_writable": rec["api_writable"],
           "replacements_ready": rec.get("replacements_ready", rec["ready_back"]),
           "service_back": rec["service_back"], "failed_requests": rec["failed_requests"]}
    # Only a node that stops renewing its lease is left to the node-lifecycle timers.
    # A control-plane machine runs no kubelet: its loss is not the node-lifecycle timers' to notice.
    on_worker = fault["node"] not in report.get("control_planes", [])
    node_fault = on_worker and (fault["kind"] in (STOP_NODE, PARTITION)
                                or (fault["kind"] == PAUSE and fault["component"] == "kubelet"))
    # While the lab had not yet noticed the node, requests failed at this rate: under Kubernetes' defaults
    # they keep failing at it until the 50 s grace ends.
    per = report["requests"]["per_second"]
    undetected = [p for p in per if fault["start"] <= p["t"] < fault["start"] + tl.LAB_GRACE]
    rate = sum(p["failed"] for p in undetected) / max(1, len(undetected))
    k8s = tl.with_kubernetes_defaults(lab, node_fault=node_fault, fault_seconds=fault["undo_start"] - fault["start"],
                                      failed_per_second=rate)
    return {"fault": fault["label"], "lab": lab, "kubernetes_defaults": k8s,
            "fault_seconds": round(fault["undo_start"] - fault["start"], 2), "ok": report["ok"],
            "invariant_violations": len(report["invariant_violations"]),
            "lost_writes": len(report["writes"]["lost"])}


def baseline(report: dict[str, Any]) -> dict[str, Any]:
    first = report["faults"][0]["start"]
    before = [p for p in report["requests"]["per_second"] if p["t"] < first]
    sent = sum(p["ok"] + p["failed"] for p in before)
    latencies = [ms for t, ok, ms in report["writes"]["points"] if ok and t < first]
    return {"success_rate_before_fault": round(sum(p["ok"] for p in before) / sent, 4) if sent else None,
            "median_write_ms_before_fault": statistics.median(latencies) if latencies else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", default="", help="comma-separated (default: every one the lab can run)")
    parser.add_argument("--cluster", default="", help="a running cluster with the demo applied")
    parser.add_argument("--control-planes", type=int, choices=(1, 3), default=1,
                        help="control-plane machines of the cluster this starts")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/chaos.py needs root")
    control_planes = args.control_planes
    if args.cluster:
        from deploy.lab.cluster import find_running

        running = find_running(args.cluster)
        if running is None:
            sys.exit(f"cluster {args.cluster!r} is not up")
        control_planes = running.control_planes
    scenarios = [s for s in args.scenarios.split(",") if s] or default_scenarios(control_planes)
    unknown = [s for s in scenarios if s not in SCENARIOS]
    if unknown:
        sys.exit(f"unknown scenarios {unknown} (scenarios: {', '.join(SCENARIOS)})")
    work = Path(tempfile.mkdtemp(prefix="kubelite-bench-chaos-"))
    name = args.cluster or f"bc{secrets.token_hex(2)}"
    env = {**os.environ, "KUBELITE_CONFIG": str(work / "config.yaml")} if not args.cluster else dict(os.environ)
    out: dict[str, Any] = {"benchmark": "chaos", "load_average_at_start": os.getloadavg(), "cluster": name,
                           "control_planes": control_planes,
                           "targets": {"api_writable_s": 5.0, "replacements_ready_s": 5.0},
                           "kubernetes_defaults": {"node_monitor_grace_period_s": tl.K8S_GRACE,
                                                   "toleration_seconds": tl.K8S_TOLERATION},
                           "lab": {"node_grace_s": tl.LAB_GRACE, "toleration_s": tl.LAB_TOLERATION},
                           "scenarios": {}}
    try:
        if not args.cluster:
            up = run("up", "--nodes", "3", "--control-planes", str(control_planes), "--name", name, env=env)
            if up.returncode != 0:
                sys.exit(f"kubelite up failed: {up.stderr.strip()[-500:]}")
            run("apply", "-f", str(ROOT / "examples"), env=env)
            run("rollout", "status", "deployment/web", "--timeout", "120s", env=env, timeout=150)
        for scenario in scenarios:
            report_dir = work / scenario
            result = run("chaos", "run", scenario, "--name", name, "--report", str(report_dir), env=env,
                         timeout=600)
            if not (report_dir / "report.json").exists():
                out["scenarios"][scenario] = {"error": result.stderr.strip()[-500:]}
                continue
            report = json.loads((report_dir / "report.json").read_text())
            out["scenarios"][scenario] = {**figures(report), "baseline": baseline(report),
                                          "report": str(report_dir)}
            # Let the cluster settle (a node back, its pods rebalanced) before the next fault.
            run("--cluster", name, "rollout", "status", "deployment/web", "--timeout", "120s", env=env, timeout=150)
    finally:
        if not args.cluster:
            run("down", "--name", name, env=env)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
