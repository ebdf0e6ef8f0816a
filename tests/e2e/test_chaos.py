"""`kubelite chaos run` and `kubelite chaos soak` on the lab, under the demo's live workload, as a user runs them."""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from chaos.faults import kernel_netem_missing
from chaos.plan import plan_soak, plan_topology

from .lab import KUBELITE, Lab, pods, wait_until

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def demo(lab: Lab) -> Iterator[Lab]:
    lab.kubelite("apply", "-f", str(ROOT / "examples"))
    lab.kubelite("rollout", "status", "deployment/web", "--timeout", "120s", timeout=150)
    yield lab
    # The faults moved pods between nodes: later modules apply the demo afresh, spread as a new one is.
    lab.kubelite("delete", "-f", str(ROOT / "examples"), check=False)
    wait_until(lambda: not pods(lab, "app in (web,client)"), timeout=90, what="the demo's pods gone")


def test_chaos_run_worker_stop_writes_a_passing_report(demo: Lab, tmp_path: Path) -> None:
    """worker-stop under 50 req/s: exit 0, no invariant violated, no acknowledged write lost, at least 95%
    success over every 30 s window with the fault, replacements Ready within 10 s, and a PNG timeline."""
    out = tmp_path / "worker-stop"
    result = demo.kubelite("chaos", "run", "worker-stop", "--report", str(out), timeout=150)
    report = json.loads((out / "report.json").read_text())
    assert report["ok"], result.stdout
    assert report["invariant_violations"] == [] and report["duplicate_pods"] == []
    assert report["writes"]["lost"] == [] and report["writes"]["acked"] > 100
    assert report["requests"]["sent"] >= 40 * 45  # 50/s for at least 40 s
    assert report["requests"]["window_success_rate"] >= 0.95
    per_second = report["requests"]["per_second"]
    assert len(per_second) >= 40 and all(set(p) == {"t", "ok", "failed"} for p in per_second)
    [fault] = report["faults"]
    assert fault["kind"] == "stop-node" and fault["node"] != report["client_node"]
    assert fault["end"] - fault["start"] >= 15
    assert 0 < fault["recovery"]["replacements_ready"] <= 10
    assert fault["recovery"]["nodes_ready_after_undo"] is not None
    assert (out / "timeline.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "![timeline](timeline.png)" in (out / "report.md").read_text()
    again = demo.kubelite("chaos", "report", str(out))
    assert again.stdout == result.stdout


def test_a_short_soak_follows_the_sequence_its_seed_gives(demo: Lab, tmp_path: Path) -> None:
    """`chaos soak --duration 60s --seed 7` breaks exactly what `--dry-run` and the plan say for seed 7, undoes
    it, and ends with no violation and no lost write."""
    first = demo.kubelite("chaos", "soak", "--duration", "60s", "--seed", "7", "--dry-run")
    dry = first.stdout
    assert dry == demo.kubelite("chaos", "soak", "--duration", "60s", "--seed", "7", "--dry-run").stdout
    # netem is drawn where the kernel has it, and said to be left out where not (as on this machine kind).
    without = ("netem",) if kernel_netem_missing() else ()
    assert ("netem left out of the draw" in first.stderr) == bool(without), first.stderr
    topo = plan_topology(("cp",), tuple(n.role for n in demo.plan.nodes))
    planned = plan_soak(7, 60.0, topo, without=without).faults
    assert [line.split(maxsplit=2)[2] for line in dry.splitlines()] == [f.label for f in planned]
    out = tmp_path / "soak"
    demo.kubelite("chaos", "soak", "--duration", "60s", "--seed", "7", "--report", str(out), timeout=180)
    report = json.loads((out / "report.json").read_text())
    assert [(f["kind"], f["node"], f["component"], f["at"], f["duration"]) for f in report["faults"]] == \
        [(f.kind, f.node, f.component, f.at, f.duration) for f in planned]
    assert report["seed"] == 7 and report["ok"], report["checks"]
    assert all(f["end"] >= f["start"] + f["duration"] for f in report["faults"])


def test_ctrl_c_undoes_the_fault_and_leaves_a_partial_report(demo: Lab, tmp_path: Path) -> None:
    """Ctrl-C while a worker is cut off: the link is up again, the writes' namespace is gone, the exit is non-zero,
    and the report says the run was interrupted."""
    out = tmp_path / "interrupted"
    proc = subprocess.Popen([KUBELITE, "chaos", "run", "worker-partition", "--report", str(out)], env=demo.env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        wait_until(lambda: _links_down(demo), timeout=60, what="a lab link cut")
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0
    assert _links_down(demo) == [], err
    report = json.loads((out / "report.json").read_text())
    assert "interrupted" in report["errors"] and report["ok"] is False
    assert report["faults"][0]["end"] is not None
    assert not [ns for ns in demo.get_json("namespaces")["items"] if ns["metadata"]["name"].startswith("chaos-")]


def _links_down(lab: Lab) -> list[str]:
    out = subprocess.run(["ip", "-br", "-n", lab.plan.lab_netns, "link"], capture_output=True, text=True,
                         check=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.split()[1] == "DOWN"]
