"""A run's report directory: report.json (the figures), timeline.png (the picture), report.md (both).

`compute_report` is pure: it turns what a run observed into the report's dictionary; `write_report` writes
the three files; `summary` is the text `kubelite chaos run` and `kubelite chaos report` print.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from chaos import plan as cplan
from chaos import timeline as tl
from chaos.faults import ChaosError
from chaos.run import Observed

NODE_FAULTS = (cplan.STOP_NODE, cplan.PARTITION)


def compute_report(obs: Observed) -> dict[str, Any]:
    plan = obs.plan
    duration = obs.duration or plan.duration
    faults = []
    for i, r in enumerate(obs.faults):
        start = r.start if r.start is not None else r.fault.at
        end = r.end if r.end is not None else start
        horizon = next((o.start for o in obs.faults[i + 1:] if o.start is not None), None) or duration
        recovery: dict[str, float | int | None] = {
            "api_writable": tl.seconds_to_api_writable(obs.writes, start, horizon),
            "service_back": tl.seconds_to_service_back(obs.requests, start, horizon),
            "failed_requests": tl.failed_between(obs.requests, start, horizon),
            "ready_back": tl.seconds_to_ready_back(obs.samples, start, horizon),
            "nodes_ready_after_undo": tl.seconds_to_nodes_ready(obs.samples, start, end, horizon),
        }
        if r.fault.kind in NODE_FAULTS and r.fault.node not in obs.control_planes:
            recovery["replacements_ready"] = tl.seconds_to_replacements(obs.samples, start, r.fault.node, horizon)
        if r.fault.kind == cplan.KILL:
            recovery["component_back"] = r.component_back
        if len(obs.control_planes) > 1 and r.fault.node in obs.control_planes:
            # Each leader-elected component: how long until one of them held its lease again.
            for component in ("scheduler", "controller-manager"):
                recovery[f"{component}_lease"] = tl.seconds_to_lease_held(obs.leases, component, start, horizon)
        faults.append({**r.fault.as_dict(), "start": start, "undo_start": r.undo_start if r.undo_start is not None
                       else end, "end": end, "recovery": recovery, "note": r.note})
    first = faults[0]["start"] if faults else 0.0
    sent = len(obs.requests)
    ok = sum(r.ok for r in obs.requests)
    acked = [w for w in obs.writes if w.ok]
    report: dict[str, Any] = {
        "scenario": plan.name,
        "seed": plan.seed,
        "cluster": obs.cluster,
        "started_at": obs.started_at,
        "duration": duration,
        "client_node": obs.client_node,
        "control_planes": list(obs.control_planes),
        "faults": faults,
        "requests": {
            "sent": sent, "ok": ok, "failed": sent - ok,
            "success_rate": tl.success_rate(obs.requests),
            "window_success_rate": tl.worst_window_success(obs.requests, first, duration) if faults else None,
            "window_seconds": tl.WINDOW,
            "failures_by_error": tl.failures_by_error(obs.requests),
            "per_second": tl.per_second(obs.requests, duration),
        },
        "writes": {"sent": len(obs.writes), "acked": len(acked), "failed": len(obs.writes) - len(acked),
                   "lost": obs.lost, "points": [[w.t, w.ok, w.ms] for w in obs.writes]},
        "deployment": obs.deployment,
        "samples": tl.series(obs.samples),
        "ready_by_node": [[s.t, s.ready_by_node] for s in obs.samples],
        "leases": [[s.t, s.component, s.holder, s.renewed, s.alive] for s in obs.leases],
        "invariant_violations": [v.as_dict() for v in obs.violations],
        "pods_kept": obs.pods_kept,
        "duplicate_pods": obs.duplicates,
        "rollout_started": obs.rollout_started,
        "rollout_done": obs.rollout_done,
        "errors": obs.errors,
    }
    report["checks"] = compute_checks(report, plan.checks)
    report["ok"] = all(c["ok"] for c in report["checks"])
    return report


def compute_checks(report: dict[str, Any], checks: cplan.Checks) -> list[dict[str, Any]]:
    """Every run: no invariant violated, no acknowledged write lost, nothing went wrong in the tool itself;
    then what the scenario promises."""
    out = [
        {"name": "no invariant violated", "ok": not report["invariant_violations"],
         "detail": f"{len(report['invariant_violations'])} violation(s)"},
        {"name": "every acknowledged write present", "ok": not report["writes"]["lost"],
         "detail": f"{report['writes']['acked']} acked, {len(report['writes']['lost'])} lost"},
        {"name": "no duplicate pods", "ok": not report.get("duplicate_pods"),
         "detail": "; ".join(report.get("duplicate_pods", [])) or "none"},
        {"name": "the run completed", "ok": not report["errors"], "detail": "; ".join(report["errors"]) or "yes"},
    ]
    faults = report["faults"]
    if checks.min_success is not None:
        rate = report["requests"]["window_success_rate"]
        out.append({"name": f"success over every {tl.WINDOW:.0f}s window with the fault >= {checks.min_success:.0%}",
                    "ok": rate is not None and rate >= checks.min_success, "detail": f"{rate}"})
    if checks.replacements_within is not None:
        times = [f["recovery"].get("replacements_ready") for f in faults]
        out.append({"name": f"replacements Ready within {checks.replacements_within:g}s",
                    "ok": all(t is not None and t <= checks.replacements_within for t in times),
                    "detail": f"{times}"})
    if checks.api_writable_within is not None:
        times = [f["recovery"]["api_writable"] for f in faults]
        out.append({"name": f"API writable within {checks.api_writable_within:g}s",
                    "ok": all(t is not None and t <= checks.api_writable_within for t in times),
                    "detail": f"{times}"})
    if checks.pods_kept:
        kept = report["pods_kept"]
        out.append({"name": "pods kept running (same pods, no restart)",
                    "ok": bool(kept.get("before")) and not kept.get("gone") and not kept.get("restarted"),
                    "detail": f"{len(kept.get('before', []))} before, {len(kept.get('gone', []))} gone, "
                              f"{len(kept.get('restarted', []))} restarted"})
    if checks.rollout_completes:
        out.append({"name": "the rollout completed", "ok": report["rollout_done"] is not None,
                    "detail": f"at {report['rollout_done']}s"})
    return out


def summary(report: dict[str, Any]) -> str:
    req = report["requests"]
    lines = [f"{report['scenario']}: {'PASSED' if report['ok'] else 'FAILED'} "
             f"({report['duration']:.0f}s on cluster {report['cluster']}"
             + (f", seed {report['seed']}" if report.get("seed") is not None else "") + ")",
             f"requests: {req['sent']} sent, {req['failed']} failed, success {_pct(req['success_rate'])} overall, "
             f"{_pct(req['window_success_rate'])} in the worst {req['window_seconds']:.0f}s window with a fault",
             *(["failed requests by cause: " + ", ".join(f"{k} {v}" for k, v in req["failures_by_error"].items())]
               if req.get("failures_by_error") else []),
             f"writes: {report['writes']['acked']} acknowledged, {report['writes']['failed']} failed, "
             f"{len(report['writes']['lost'])} lost",
             f"invariant violations: {len(report['invariant_violations'])}"]
    for v in report["invariant_violations"][:10]:
        lines.append(f"  {v['t']:7.2f}s {v['invariant']}: {v['detail']}")
    lines.append("faults:")
    for f in report["faults"]:
        rec = ", ".join(f"{k} {_secs(v) if k != 'failed_requests' else v}" for k, v in f["recovery"].items())
        lines.append(f"  {f['start']:6.1f}s-{f['end']:6.1f}s {f['label']}: {rec}"
                     + (f" ({f['note']})" if f.get("note") else ""))
    lines.append("checks:")
    for c in report["checks"]:
        lines.append(f"  [{'ok' if c['ok'] else 'FAIL'}] {c['name']}: {c['detail']}")
    return "\n".join(lines)


def _pct(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:.2%}"


def _secs(v: float | None) -> str:
    return "never" if v is None else f"{v:.2f}s"


def write_report(report: dict[str, Any], directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    render_timeline(report, directory / "timeline.png")
    (directory / "report.md").write_text(render_markdown(report))


def load_report(directory: Path) -> dict[str, Any]:
    path = directory / "report.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such report (a chaos run's --report directory holds one)") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not a chaos report: {e}") from None


def render_markdown(report: dict[str, Any]) -> str:
    rows = "\n".join(f"| F{i + 1} | {f['start']:.1f}–{f['end']:.1f} s | {f['label']} | "
                     + ", ".join(f"{k}: {v}" for k, v in f["recovery"].items()) + " |"
                     for i, f in enumerate(report["faults"]))
    checks = "\n".join(f"- {'✅' if c['ok'] else '❌'} {c['name']}: {c['detail']}" for c in report["checks"])
    return (f"# Chaos run: {report['scenario']}\n\n"
            f"{'Passed' if report['ok'] else 'Failed'} on cluster `{report['cluster']}`, "
            f"{report['duration']:.0f} s of load from {report['client_node']}.\n\n"
            "![timeline](timeline.png)\n\n"
            "| | when | fault | recovery (seconds from the fault's start; nodes: from its undo) |\n|---|---|---|---|\n"
            f"{rows}\n\n## Checks\n\n{checks}\n\n## Summary\n\n```\n{summary(report)}\n```\n")


def require_plotting() -> None:
    """Fail before any fault when the timeline cannot be drawn, naming what to install."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ChaosError("kubelite chaos draws timeline.png with matplotlib, which is not installed: "
                         "pip install 'kubelite[chaos]'") from None


def render_timeline(report: dict[str, Any], path: Path) -> None:
    """Requests per second (ok and failed), ready replicas, nodes Ready and API write latency over time, with
    every fault's window shaded and labelled and its recovery times marked."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, axes = plt.subplots(4, 1, figsize=(12, 10), sharex=True,
                             gridspec_kw={"height_ratios": [3, 2, 1.3, 2]})
    ax_req, ax_ready, ax_nodes, ax_lat = axes
    per = report["requests"]["per_second"]
    ts = [p["t"] for p in per]
    ax_req.bar(ts, [p["ok"] for p in per], width=1.0, align="edge", color="tab:green", label="ok")
    ax_req.bar(ts, [p["failed"] for p in per], width=1.0, align="edge", color="tab:red",
               bottom=[p["ok"] for p in per], label="failed")
    ax_req.set_ylabel("requests/s")
    ax_req.set_ylim(0, max([p["ok"] + p["failed"] for p in per] + [1]) * 1.2)
    ax_req.legend(loc="lower left", fontsize=8)
    ax_req.set_title(f"chaos run {report['scenario']} on {report['cluster']}: success "
                     f"{_pct(report['requests']['success_rate'])}, "
                     f"{report['requests']['failed']} failed of {report['requests']['sent']}, "
                     f"{len(report['invariant_violations'])} invariant violations")

    s = report["samples"]
    ax_ready.step(s["t"], s["ready"], where="post", color="tab:blue",
                  label=f"ready replicas of {report.get('deployment') or 'the demo'}")
    if any(s.get("updated", ())):
        ax_ready.step(s["t"], s["updated"], where="post", color="tab:cyan", label="of them, updated by the rollout")
    ax_ready.step(s["t"], s["desired"], where="post", color="gray", linestyle="--", label="desired")
    ax_ready.set_ylabel("replicas")
    ax_ready.set_ylim(bottom=0, top=max([*s["desired"], *s["ready"], 1]) + 1.5)
    ax_ready.legend(loc="lower left", fontsize=8)

    ax_nodes.step(s["t"], s["nodes_ready"], where="post", color="tab:purple", label="nodes Ready")
    ax_nodes.step(s["t"], s["nodes"], where="post", color="gray", linestyle="--", label="nodes")
    ax_nodes.set_ylabel("nodes")
    ax_nodes.set_ylim(bottom=0, top=max([*s["nodes"], 1]) + 1)
    ax_nodes.legend(loc="lower left", fontsize=8)

    points = report["writes"]["points"]
    ax_lat.scatter([p[0] for p in points if p[1]], [p[2] for p in points if p[1]], s=6, color="tab:orange",
                   label="acknowledged")
    failed = [p for p in points if not p[1]]
    if failed:
        ax_lat.scatter([p[0] for p in failed], [p[2] for p in failed], s=14, marker="x", color="tab:red",
                       label="failed")
    ax_lat.set_ylabel("API write ms")
    ax_lat.set_yscale("symlog", linthresh=1)
    ax_lat.set_xlabel("seconds since the run started")
    ax_lat.legend(loc="upper left", fontsize=8)

    # Many faults (a soak): number them, in three staggered rows, and let report.md's table name them.
    numbered = len(report["faults"]) > 6
    for i, f in enumerate(report["faults"]):
        # The fault itself, then (lighter) the time its undo took: a stopped node's start, a killed component's
        # restart.
        undo = max(f.get("undo_start", f["end"]), f["start"] + 0.3)
        for ax in axes:
            ax.axvspan(f["start"], undo, color="tab:red", alpha=0.15)
            if f["end"] > undo + 0.3:
                ax.axvspan(undo, f["end"], color="tab:orange", alpha=0.12)
        if f["end"] > undo + 0.3 and not numbered:
            ax_req.annotate("undoing", xy=(undo, 1.0), xycoords=("data", "axes fraction"), xytext=(3, -12),
                            textcoords="offset points", fontsize=8, color="saddlebrown")
            ax.axvline(f["start"], color="tab:red", linewidth=0.8)
        ax_req.annotate(f"F{i + 1}" if numbered else f["label"], xy=(f["start"], 1.0),
                        xycoords=("data", "axes fraction"), xytext=(1, -12 - 10 * (i % 3 if numbered else 0)),
                        textcoords="offset points", fontsize=8, color="darkred")
        _mark(ax_req, f, "service_back", "100% again")
        _mark(ax_ready, f, "replacements_ready", "replacements Ready")
        if "replacements_ready" not in f["recovery"]:
            _mark(ax_ready, f, "ready_back", "all ready")
        _mark(ax_lat, f, "api_writable", "API writable")
        _mark(ax_nodes, f, "nodes_ready_after_undo", "all nodes Ready", base="end")
        # Several control planes: when a live leader held each lease again.
        _mark(ax_ready, f, "scheduler_lease", "scheduler leader")
        _mark(ax_nodes, f, "controller-manager_lease", "controller-manager leader")
    for key, text in (("rollout_started", "rollout started"), ("rollout_done", "rollout done")):
        if report.get(key) is not None:
            ax_ready.axvline(report[key], color="tab:blue", linestyle="-.", linewidth=1)
            # Left of its line: a recovery mark ("all ready") often falls on the same moment, labelled right.
            ax_ready.annotate(f"{text} ({report[key]:.1f}s)", xy=(report[key], 0.05),
                              xycoords=("data", "axes fraction"), xytext=(-3, 0), textcoords="offset points",
                              fontsize=8, rotation=90, va="bottom", ha="right", color="tab:blue")
    axes[-1].set_xlim(0, report["duration"])
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _mark(ax: Any, fault: dict[str, Any], key: str, text: str, *, base: str = "start") -> None:
    """A dotted line at the moment a recovery completed, labelled with how long it took."""
    seconds = fault["recovery"].get(key)
    if seconds is None or seconds < 0.5:  # nothing to see: the part did not notice
        return
    at = fault[base] + seconds
    ax.axvline(at, color="black", linestyle=":", linewidth=1)
    ax.annotate(f"{text}: {seconds:.1f}s", xy=(at, 0.5), xycoords=("data", "axes fraction"), xytext=(3, 0),
                textcoords="offset points", fontsize=8, rotation=90, va="center")
