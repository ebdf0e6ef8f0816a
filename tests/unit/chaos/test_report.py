"""A run's report: figures and checks from what it observed, and the directory `kubelite chaos report` reads."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from chaos import plan as cp
from chaos.faults import ChaosError
from chaos.invariants import Violation
from chaos.report import compute_report, load_report, require_plotting, summary, write_report
from chaos.run import FaultRecord, Observed
from chaos.timeline import Request, Sample, Write

KUBELITE = str(Path(sys.executable).with_name("kubelite"))


def observed(*, fail_from: float = 12.0, fail_to: float = 14.0, replaced_at: float = 17.0,
             violations: tuple[Violation, ...] = (), lost: tuple[str, ...] = (),
             duplicates: tuple[str, ...] = ()) -> Observed:
    """A 40 s worker-stop: n3 stopped at 10 s, undone at 25-30 s; requests fail in [fail_from, fail_to)."""
    run_plan = cp.plan_scenario("worker-stop", cp.plan_topology(("cp",), ("n1", "n2", "n3"), ("n3",)))
    obs = Observed(run_plan, "lab", 1000.0, duration=40.0, client_node="n1")
    obs.requests = [Request(i / 50, not fail_from <= i / 50 < fail_to, 2.0) for i in range(40 * 50)]
    obs.writes = [Write(i / 10, True, 3.0, f"w-{i}") for i in range(400)]
    obs.samples = [Sample(t / 2, 3, {"n1": 1, "n2": 1} if 14 <= t / 2 < replaced_at else
                          ({"n1": 2, "n2": 1} if t / 2 >= replaced_at else {"n1": 1, "n2": 1, "n3": 1}),
                          2 if 14 <= t / 2 < 31 else 3, 3) for t in range(80)]
    obs.faults = [FaultRecord(run_plan.faults[0], start=10.0, undo_start=25.0, end=30.0)]
    obs.violations = list(violations)
    obs.lost = list(lost)
    obs.duplicates = list(duplicates)
    return obs


def test_a_good_worker_stop_passes_with_its_figures() -> None:
    """Two seconds of failures in 40: 95% overall but 93.3% in the worst 30 s window, so worker-stop fails."""
    report = compute_report(observed())
    assert report["requests"]["sent"] == 2000 and report["requests"]["failed"] == 100
    assert report["requests"]["success_rate"] == 0.95
    assert report["requests"]["window_success_rate"] == pytest.approx(0.9333, abs=1e-4)
    rec = report["faults"][0]["recovery"]
    assert rec == {"api_writable": 0.0, "service_back": 4.0, "failed_requests": 100, "ready_back": 7.0,
                   "nodes_ready_after_undo": 1.0, "replacements_ready": 7.0}
    failed = [c["name"] for c in report["checks"] if not c["ok"]]
    assert failed == ["success over every 30s window with the fault >= 95%"]
    assert report["ok"] is False


@pytest.mark.parametrize(("kw", "failing"), [
    pytest.param({"fail_from": 12.0, "fail_to": 13.0}, [], id="one-second-of-failures-passes"),
    pytest.param({"fail_from": 12.0, "fail_to": 13.0, "replaced_at": 21.0}, ["replacements Ready within 10s"],
                 id="slow-replacements"),
    pytest.param({"fail_from": 12.0, "fail_to": 13.0, "violations": (Violation(3.0, "pod-bound-once", "x"),)},
                 ["no invariant violated"], id="an-invariant-violated"),
    pytest.param({"fail_from": 12.0, "fail_to": 13.0, "lost": ("w-3",)}, ["every acknowledged write present"],
                 id="a-lost-write"),
    pytest.param({"fail_from": 12.0, "fail_to": 13.0, "duplicates": ("replicaset web-1: 4 pods for 3 replicas",)},
                 ["no duplicate pods"], id="a-duplicate-pod"),
])
def test_checks(kw: dict, failing: list[str]) -> None:
    """Each promise of the scenario, and the ones every run keeps, fail on their own."""
    report = compute_report(observed(**kw))
    assert [c["name"] for c in report["checks"] if not c["ok"]] == failing
    assert report["ok"] is (not failing)


def test_the_report_directory_and_kubelite_chaos_report(tmp_path: Path) -> None:
    """report.json, a PNG timeline and report.md embedding it are written; `kubelite chaos report DIR` prints the
    same summary and exits 0 for a passed run."""
    report = compute_report(observed(fail_from=12.0, fail_to=13.0))
    write_report(report, tmp_path)
    assert (tmp_path / "timeline.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "![timeline](timeline.png)" in (tmp_path / "report.md").read_text()
    assert load_report(tmp_path) == json.loads(json.dumps(report))
    result = subprocess.run([KUBELITE, "chaos", "report", str(tmp_path)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == summary(report)
    assert "worker-stop: PASSED" in result.stdout and "stop n3" in result.stdout


def test_chaos_report_on_a_directory_without_a_report_says_so(tmp_path: Path) -> None:
    """No report.json: one line naming the file, exit 1."""
    result = subprocess.run([KUBELITE, "chaos", "report", str(tmp_path)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 1
    assert result.stderr.strip() == f"error: {tmp_path}/report.json: no such report (a chaos run's --report " \
                                    "directory holds one)"


def test_a_machine_without_matplotlib_is_told_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the plotting extra is missing, the run stops before any fault, naming the package to install."""
    require_plotting()
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ChaosError, match=r"pip install 'kubelite\[chaos\]'"):
        require_plotting()
