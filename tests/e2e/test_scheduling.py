"""Pod priority and taints on a lab cluster, as a user meets them: the documentation's PriorityClass applies and a
pod naming it runs with its value; a NoExecute taint added with `kubelite taint` evicts a pod tolerating it for
5 s 5-7 s later, and the stored taint carries timeAdded."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from .lab import Lab

IMAGE = "localhost:5000/kubelite/busybox:1.35"
PRIORITY = Path(__file__).resolve().parents[1] / "data" / "k8s-docs" / "priority"


def test_documentation_priority_class_and_a_pod_naming_it(lab: Lab) -> None:
    """The documentation's high-priority class applies; a pod naming it runs with priority 1000000."""
    lab.kubelite("apply", "-f", str(PRIORITY / "priority-class.yaml"))
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "important"},
           "spec": {"priorityClassName": "high-priority", "terminationGracePeriodSeconds": 1,
                    "containers": [{"name": "c", "image": IMAGE, "command": ["sleep", "3600"]}]}}
    try:
        lab.kubelite("apply", "-f", "-", stdin=json.dumps(pod))
        lab.kubelite("wait", "--for=condition=Ready", "pod/important", "--timeout", "60", timeout=90)
        spec = lab.get_json("pod", "important")["spec"]
        assert (spec["priority"], spec["preemptionPolicy"]) == (1000000, "PreemptLowerPriority")
        rows = [line.split() for line in lab.kubelite("get", "pc").stdout.splitlines()]
        assert rows[0] == ["NAME", "VALUE", "GLOBAL-DEFAULT", "AGE", "PREEMPTIONPOLICY"]
        assert ["high-priority", "1000000", "false"] in [r[:3] for r in rows]
    finally:
        lab.kubelite("delete", "pod", "important", "--grace-period", "1", "--ignore-not-found")
        lab.kubelite("delete", "pc", "high-priority", "--ignore-not-found")


async def _first_marked_for_deletion(lab: Lab, name: str, limit: float) -> float | None:
    async with lab.client() as c:
        while time.time() < limit:
            if (await c.get("pods", name, "default")).metadata.HasField("deletion_timestamp"):
                return time.time()
            await asyncio.sleep(0.05)
    return None


def test_taint_evicts_a_five_second_toleration_five_to_seven_seconds_later(lab: Lab) -> None:
    """`kubelite taint node N dedicated=x:NoExecute` on a node running a pod that tolerates it for 5 s: the pod is
    evicted 5-7 s after the taint was added, and `get node -o json` shows the taint's timeAdded."""
    node = lab.plan.nodes[-1].role
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "tolerates-5s"},
           "spec": {"nodeName": node, "terminationGracePeriodSeconds": 1,
                    "tolerations": [{"key": "dedicated", "operator": "Exists", "effect": "NoExecute",
                                     "tolerationSeconds": 5}],
                    "containers": [{"name": "c", "image": IMAGE, "command": ["sleep", "3600"]}]}}
    lab.kubelite("apply", "-f", "-", stdin=json.dumps(pod))
    try:
        lab.kubelite("wait", "--for=condition=Ready", "pod/tolerates-5s", "--timeout", "60", timeout=90)
        before = time.time()
        lab.kubelite("taint", "node", node, "dedicated=x:NoExecute")
        after = time.time()
        gone = asyncio.run(_first_marked_for_deletion(lab, "tolerates-5s", after + 12))
        assert gone is not None, "not evicted within 12 s"
        # The taint was added between `before` and `after`.
        assert gone - before >= 5.0 and gone - after <= 7.0, (before, after, gone)
        taints = lab.get_json("node", node)["spec"]["taints"]
        stamped = [t for t in taints if t["key"] == "dedicated"]
        assert len(stamped) == 1 and stamped[0]["effect"] == "NoExecute" and stamped[0]["timeAdded"], taints
    finally:
        lab.kubelite("taint", "node", node, "dedicated-", check=False)
        lab.kubelite("delete", "pod", "tolerates-5s", "--grace-period", "1", "--ignore-not-found")
