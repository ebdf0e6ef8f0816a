"""A lab cluster recovering by itself, as a user sees it: node daemons killed with SIGKILL come back, counted in
`kubelite status`; a kubelet back after its node was lost reports its pods Running again, NodeLost gone."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

from deploy.lab.procs import Supervisor

from .lab import Lab, wait_until

IMAGE = "localhost:5000/kubelite/busybox:1.35"


def status_rows(lab: Lab) -> dict[str, dict[str, str]]:
    """`kubelite status` as a user reads it: component -> PID, STATE, RESTARTS."""
    out = lab.kubelite("status", "--name", lab.name).stdout.splitlines()
    header = out[0].split()
    rows = {}
    for line in out[1:]:
        if not line.strip():
            break
        cells = line.split()
        rows[cells[0]] = {"PID": cells[1], "STATE": cells[2], "RESTARTS": cells[-2]}
    assert header[:2] == ["COMPONENT", "PID"] and "RESTARTS" in header, out
    return rows


def test_killed_node_components_come_back_within_three_seconds(lab: Lab) -> None:
    """`kill -9` of a node's containerd, kubelet or proxy: it runs again within 3 s, `kubelite status` counts the
    restart, and the node stays Ready."""
    node = lab.plan.nodes[-1].role
    for component in (f"containerd-{node}", f"kubelet-{node}", f"proxy-{node}"):
        before = status_rows(lab)[component]
        assert before["STATE"] == "running", before
        killed = time.monotonic()
        os.kill(int(before["PID"]), signal.SIGKILL)

        def back(component: str = component, before: dict[str, str] = before) -> dict[str, str] | None:
            row = status_rows(lab)[component]
            return row if row["STATE"] == "running" and row["PID"] != before["PID"] else None

        row = wait_until(back, timeout=10, interval=0.05, what=f"{component} running again")
        took = time.monotonic() - killed
        assert took < 3.0, f"{component} took {took:.1f}s"
        assert int(row["RESTARTS"]) == int(before["RESTARTS"]) + 1, row
    wait_until(lambda: any(c["type"] == "Ready" and c["status"] == "True"
                           for c in lab.get_json("node", node)["status"]["conditions"]),
               timeout=30, what=f"{node} Ready")


def test_chaos_on_unknown_names_says_so_in_one_line(lab: Lab) -> None:
    """chaos on a component or node the cluster does not have: one line naming what exists, exit 1."""
    for args, message in ((("restart", "kubelet-n9"), "no component 'kubelet-n9'"),
                          (("stop-node", "n9"), "no node 'n9'"),
                          (("partition", "n9", "--for", "1"), "no node 'n9'")):
        result = lab.kubelite("chaos", *args, "--name", lab.name, check=False)
        assert result.returncode == 1 and message in result.stderr, result.stderr
        assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_returning_kubelet_clears_node_lost(lab: Lab) -> None:
    """A node's daemons stopped until the node is Unknown and its pod NodeLost, then started: within 5 s the pod is
    Running in `kubelite get pods` with no NodeLost anywhere in its status, in the same container."""
    node = lab.plan.nodes[-1].role
    pod = {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "adopted"},
        "spec": {"nodeName": node, "terminationGracePeriodSeconds": 1,
                 "tolerations": [{"key": "node.kubernetes.io/unreachable", "operator": "Exists",
                                  "effect": "NoExecute"}],
                 "containers": [{"name": "c", "image": IMAGE, "command": ["sleep", "3600"]}]},
    }
    lab.kubelite("apply", "-f", "-", stdin=json.dumps(pod))
    try:
        lab.kubelite("wait", "--for=condition=Ready", "pod/adopted", "--timeout", "60", timeout=90)
        first = lab.get_json("pod", "adopted")["status"]["containerStatuses"][0]["containerID"]
        # The node's daemons stay stopped for 8 s: past the 2 s grace, so the node is Unknown and its pod NodeLost.
        lab.kubelite("chaos", "stop-node", node, "--for", "8", "--name", lab.name, timeout=120)
        back = time.monotonic()
        events = lab.kubelite("get", "events", "--field-selector", f"involvedObject.name={node}").stdout
        assert "NodeNotReady" in events, events

        def running() -> bool:
            rows = [line.split() for line in lab.kubelite("get", "pods").stdout.splitlines()[1:]]
            status = lab.get_json("pod", "adopted")["status"]
            return (["adopted", "1/1", "Running", "0"] in [r[:4] for r in rows]
                    and "NodeLost" not in json.dumps(status))

        wait_until(running, timeout=15, interval=0.1, what="adopted Running without NodeLost")
        took = time.monotonic() - back
        assert took < 5.0, f"took {took:.1f}s"
        assert lab.get_json("pod", "adopted")["status"]["containerStatuses"][0]["containerID"] == first
    finally:
        lab.kubelite("delete", "pod", "adopted", "--grace-period", "1", "--ignore-not-found")


def test_a_component_that_keeps_dying_is_given_up(lab: Lab, tmp_path: Path) -> None:
    """The supervisor starts a component that keeps dying five times within 10 s, then leaves it `failed` in
    `kubelite status`, with its restarts counted; once it can run, `chaos restart` starts it again by hand."""
    sup = Supervisor.for_plan(lab.plan)
    fixed = tmp_path / "fixed"
    sup.start("crashy", ["sh", "-c", f"test -e {fixed} && exec sleep 600; sleep 0.2; exit 1"])
    try:
        row = wait_until(lambda: (r := status_rows(lab).get("crashy")) and r["STATE"] == "failed" and r,
                         timeout=30, interval=0.2, what="crashy given up")
        assert row["RESTARTS"] == "4", row
        out = lab.kubelite("status", "--name", lab.name).stdout
        assert "failed (started 5 times within 10s)" in out, out
        fixed.touch()
        lab.kubelite("chaos", "restart", "crashy", "--name", lab.name)
        row = status_rows(lab)["crashy"]
        assert (row["STATE"], row["RESTARTS"]) == ("running", "0"), row
    finally:
        sup.stop("crashy", timeout=1.0)
