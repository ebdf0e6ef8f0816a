"""Jobs, CronJobs, DaemonSets, StatefulSets, disruption budgets and drain on a 3-node lab, as a user drives them.

The documentation's manifests apply unchanged (their images come from the lab registry's stand-ins). Watchers run
beside the faults: one counts ready replicas through a drain, one reads the machine's processes through a node
stop to see that no two pods of one StatefulSet identity ever run at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from api.errors import ApiError

from .lab import Lab, pods, ready, wait_until

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "tests" / "data" / "k8s-docs" / "workloads"
IMAGE = "localhost:5000/kubelite/busybox:1.35"
PI_PREFIX = "3.14159265358979323846264338327950288419716939937510582097494459230781640628620899862803482534211706"


def _delete(lab: Lab, *args: str) -> None:
    lab.kubelite("delete", *args, "--ignore-not-found", check=False, timeout=120)


def _apply(lab: Lab, obj: dict[str, Any]) -> None:
    lab.kubelite("apply", "-f", "-", stdin=json.dumps(obj))


def _jobs(lab: Lab, selector: str = "") -> list[dict[str, Any]]:
    return lab.get_json("jobs", *(["-l", selector] if selector else []))["items"]


def _condition(obj: dict[str, Any], type_: str) -> dict[str, Any] | None:
    return next((c for c in obj.get("status", {}).get("conditions", []) if c["type"] == type_
                 and c["status"] == "True"), None)


def test_documentation_pi_job_prints_pi(lab: Lab) -> None:
    """The pi Job applies unchanged, completes (`wait --for=condition=complete`), and `logs job/pi` shows 2000 digits
    of pi."""
    lab.kubelite("apply", "-f", str(DOCS / "job.yaml"))
    try:
        done = lab.kubelite("wait", "--for=condition=complete", "job/pi", "--timeout", "300s", timeout=330)
        assert done.stdout.strip() == "job.batch/pi condition met"
        digits = lab.kubelite("logs", "job/pi").stdout.strip()
        assert digits.startswith(PI_PREFIX) and len(digits) == 2001, digits[:200]
        row = lab.kubelite("get", "job", "pi").stdout.splitlines()[1].split()
        assert row[:3] == ["pi", "Complete", "1/1"], row
    finally:
        _delete(lab, "job", "pi")


def test_backoff_limit_two_fails_after_three_pods(lab: Lab) -> None:
    """backoffLimit 2 with a pod that exits 1: exactly three pods ran, and the Job failed with BackoffLimitExceeded."""
    _apply(lab, {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "doomed"},
                 "spec": {"backoffLimit": 2, "template": {"spec": {
                     "restartPolicy": "Never", "terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "c", "image": IMAGE, "command": ["sh", "-c", "exit 1"]}]}}}})
    try:
        failed = lab.kubelite("wait", "--for=condition=failed", "job/doomed", "--timeout", "180s", timeout=200)
        assert failed.returncode == 0
        job = lab.get_json("job", "doomed")
        assert _condition(job, "Failed")["reason"] == "BackoffLimitExceeded"  # type: ignore[index]
        assert job["status"]["failed"] == 3
        time.sleep(2)
        ran = pods(lab, "batch.kubernetes.io/job-name=doomed")
        assert len(ran) == 3 and all(p["status"]["phase"] == "Failed" for p in ran), [p["status"] for p in ran]
    finally:
        _delete(lab, "job", "doomed")


def test_documentation_cronjob_runs_every_minute_with_limited_history(lab: Lab) -> None:
    """The hello CronJob applies unchanged and runs every minute (its Jobs' logs say hello); with
    successfulJobsHistoryLimit lowered to 1, only the latest finished Job is kept."""
    lab.kubelite("apply", "-f", str(DOCS / "cronjob.yaml"))
    try:
        def completed() -> list[dict[str, Any]]:
            return [j for j in _jobs(lab) if j["metadata"]["name"].startswith("hello-") and _condition(j, "Complete")]

        first = wait_until(lambda: completed(), timeout=150, interval=2, what="a first scheduled Job")
        out = lab.kubelite("logs", f"job/{first[0]['metadata']['name']}").stdout
        assert "Hello from the Kubernetes cluster" in out, out
        wait_until(lambda: len(completed()) >= 2, timeout=150, interval=2, what="a second run a minute later")
        names = sorted(j["metadata"]["name"] for j in completed())
        minutes = [int(n.rsplit("-", 1)[1]) for n in names]
        assert minutes[1] - minutes[0] == 1, names
        cj = lab.get_json("cj", "hello")
        assert cj["status"]["lastScheduleTime"] and cj["status"]["lastSuccessfulTime"]
        manifest = next(d for d in yaml.safe_load_all((DOCS / "cronjob.yaml").read_text()) if d)
        manifest["spec"]["successfulJobsHistoryLimit"] = 1
        _apply(lab, manifest)
        kept = wait_until(lambda: (c := completed()) and len(c) == 1 and c, timeout=90, interval=1,
                          what="history cut to 1")
        assert kept[0]["metadata"]["name"] == max(j["metadata"]["name"] for j in completed())
    finally:
        _delete(lab, "cronjob", "hello")
        for j in _jobs(lab):
            if j["metadata"]["name"].startswith("hello-"):
                _delete(lab, "job", j["metadata"]["name"])


class PodWatch(threading.Thread):
    """A watch on pods matching a selector, in its own thread: `on_change(pods)` runs after every event."""

    def __init__(self, lab: Lab, selector: str, on_change: Callable[[dict[str, Any]], None]) -> None:
        super().__init__(daemon=True)
        self.lab, self.selector, self.on_change = lab, selector, on_change
        self.stop_event = threading.Event()
        self.events = 0

    def run(self) -> None:
        asyncio.run(self._run())

    async def _run(self) -> None:
        async with self.lab.client() as client:
            consumer = asyncio.ensure_future(self._consume(client))
            await asyncio.to_thread(self.stop_event.wait)
            consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await consumer

    async def _consume(self, client: Any) -> None:
        while True:
            with contextlib.suppress(ApiError):
                listed = await client.list("pods", "default", label_selector=self.selector)
                current = {p.metadata.name: p for p in listed.items}
                self.on_change(current)
                async for ev in client.watch("pods", "default", resource_version=listed.resource_version,
                                             label_selector=self.selector):
                    if ev.type == "BOOKMARK":
                        continue
                    if ev.type == "DELETED":
                        current.pop(ev.object.metadata.name, None)
                    else:
                        current[ev.object.metadata.name] = ev.object
                    self.events += 1
                    self.on_change(current)
            await asyncio.sleep(0.2)

    def stop(self) -> None:
        self.stop_event.set()
        self.join(10)


def _ready_pb(pod: Any) -> bool:
    return not pod.metadata.HasField("deletion_timestamp") and any(
        c.type == "Ready" and c.status == "True" for c in pod.status.conditions)


def _set_cordon(lab: Lab, nodes: list[str], on: bool) -> None:
    for n in nodes:
        lab.kubelite("cordon" if on else "uncordon", n)


def test_drain_keeps_the_disruption_budget(lab: Lab) -> None:
    """Three replicas all on n2 under minAvailable 2: `kubelite drain n2` evicts them one at a time, a watcher never
    sees fewer than 2 ready, and the drain finishes once the replacements are ready on the other nodes."""
    others = [n.role for n in lab.plan.nodes if n.role != "n2"]
    _set_cordon(lab, others, True)
    deploy = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "keep"},
              "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "keep"}},
                       "template": {"metadata": {"labels": {"app": "keep"}}, "spec": {
                           "terminationGracePeriodSeconds": 2,
                           "containers": [{"name": "c", "image": IMAGE,
                                           "command": ["httpd", "-f", "-p", "8080", "-h", "/www"],
                                           "readinessProbe": {"httpGet": {"path": "/", "port": 8080},
                                                              "periodSeconds": 1}}]}}}}
    pdb = {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "keep"},
           "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "keep"}}}}
    seen: list[int] = []
    watcher = PodWatch(lab, "app=keep", lambda current: seen.append(sum(map(_ready_pb, current.values()))))
    try:
        _apply(lab, deploy)
        lab.kubelite("rollout", "status", "deployment/keep", "--timeout", "120s", timeout=150)
        assert {p["spec"]["nodeName"] for p in pods(lab, "app=keep")} == {"n2"}
        _set_cordon(lab, others, False)
        _apply(lab, pdb)
        wait_until(lambda: lab.get_json("pdb", "keep").get("status", {}).get("disruptionsAllowed") == 1,
                   timeout=30, what="one disruption allowed")

        watcher.start()
        wait_until(lambda: seen, timeout=10, what="the watcher listing")
        drained = lab.kubelite("drain", "n2", "--ignore-daemonsets", "--delete-emptydir-data", "--timeout", "240s",
                               timeout=270)
        watcher.stop()
        out = drained.stdout.splitlines()
        assert out[0] == "node/n2 cordoned" and out[-1] == "node/n2 drained", drained.stdout
        assert sum(1 for line in out if line.startswith("evicting pod default/keep-")) == 3
        assert "Cannot evict pod as it would violate the pod's disruption budget." in drained.stderr
        # Every watch event (each eviction, each replacement's readiness) was seen: never fewer than 2 ready.
        assert watcher.events > 10 and min(seen) >= 2, seen
        placed = [p for p in pods(lab, "app=keep") if not p["metadata"].get("deletionTimestamp")]
        assert len(placed) == 3 and all(ready(p) and p["spec"]["nodeName"] != "n2" for p in placed)
    finally:
        watcher.stop_event.set()
        _set_cordon(lab, [n.role for n in lab.plan.nodes], False)
        _delete(lab, "pdb", "keep")
        _delete(lab, "deployment", "keep")


def _cgroup_uids(uids: set[str]) -> set[str]:
    """Which of these pod uids have a process running anywhere on this machine (pod cgroups are .../pod<uid>)."""
    alive: set[str] = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            text = (proc / "cgroup").read_text()
        except OSError:
            continue
        for uid in uids:
            if f"pod{uid}" in text:
                alive.add(uid)
    return alive


def test_statefulset_identity_is_never_doubled_through_a_node_stop(lab: Lab) -> None:
    """The chaos node-loss scenario stops the node of db-1: a watcher reading the machine's processes never sees two
    db-1 pods running at once; db-1 is not made again while its node is down, and runs again once it is back."""
    sts = {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"},
           "spec": {"serviceName": "db", "replicas": 3, "selector": {"matchLabels": {"app": "db"}},
                    "template": {"metadata": {"labels": {"app": "db"}}, "spec": {
                        "terminationGracePeriodSeconds": 1,
                        "containers": [{"name": "c", "image": IMAGE, "command": ["sleep", "3600"]}]}}}}
    _apply(lab, {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "db"},
                 "spec": {"clusterIP": "None", "selector": {"app": "db"}, "ports": [{"port": 80}]}})
    _apply(lab, sts)
    stop = threading.Event()
    uids: set[str] = set()
    most = 0
    samples_with_old = 0
    names = PodWatch(lab, "app=db", lambda current: uids.update(
        p.metadata.uid for n, p in current.items() if n == "db-1"))
    try:
        lab.kubelite("rollout", "status", "sts/db", "--timeout", "120s", timeout=150)
        first = lab.get_json("pod", "db-1")
        node = first["spec"]["nodeName"]
        uids.add(first["metadata"]["uid"])

        names.start()

        def watch() -> None:
            nonlocal most, samples_with_old
            while not stop.is_set():
                alive = _cgroup_uids(set(uids))
                most = max(most, len(alive))
                if first["metadata"]["uid"] in alive:
                    samples_with_old += 1
                time.sleep(0.1)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        result = lab.kubelite("chaos", "run", "node-loss", "--node", node, "--name", lab.name, "--timeout", "90",
                              check=False, timeout=400)
        report = json.loads(result.stdout)
        assert result.returncode == 0, result.stdout + result.stderr
        assert report["identities_held"] == ["db-1"] and report["duplicate_identities"] == 0, report
        wait_until(lambda: ready(lab.get_json("pod", "db-1")), timeout=60, what="db-1 running again")
        time.sleep(1)
        stop.set()
        watcher.join(10)
        names.stop()
        assert most == 1, f"{most} db-1 pods ran at once"
        assert samples_with_old > 10  # the watcher saw the first db-1 still running on the stopped node
        assert len(uids) == 2  # it was made again exactly once, after its node came back
    finally:
        stop.set()
        names.stop_event.set()
        _delete(lab, "statefulset", "db")
        _delete(lab, "service", "db")


def _client_pod(lab: Lab) -> None:
    _apply(lab, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "dns-test"},
                 "spec": {"terminationGracePeriodSeconds": 1,
                          "containers": [{"name": "c", "image": "busybox:1.28", "command": ["sleep", "3600"]}]}})
    lab.kubelite("wait", "--for=condition=Ready", "pod/dns-test", "--timeout", "90s", timeout=120)


def test_documentation_web_statefulset(lab: Lab) -> None:
    """The web StatefulSet and its headless nginx Service apply unchanged: web-0 starts before web-1, each has its
    claim www-web-<n>, each resolves by its stable name from a client pod, and each keeps its own data across pod
    deletion and a scale down and up."""
    lab.kubelite("apply", "-f", str(DOCS / "web.yaml"))
    try:
        lab.kubelite("rollout", "status", "sts/web", "--timeout", "180s", timeout=210)
        web0, web1 = lab.get_json("pod", "web-0"), lab.get_json("pod", "web-1")
        ready0 = next(c["lastTransitionTime"] for c in web0["status"]["conditions"] if c["type"] == "Ready")
        # The kubelet reports whole seconds: web-1 was created in or after the second web-0 became Ready.
        created1 = dt.datetime.fromisoformat(web1["metadata"]["creationTimestamp"].replace("Z", "+00:00"))
        assert created1.replace(microsecond=0) >= dt.datetime.fromisoformat(ready0.replace("Z", "+00:00"))
        claims = {c["metadata"]["name"]: c for c in lab.get_json("pvc")["items"]}
        assert {"www-web-0", "www-web-1"} <= set(claims)
        assert all(claims[f"www-web-{i}"]["status"]["phase"] == "Bound" for i in (0, 1))
        _client_pod(lab)
        for i, pod in enumerate((web0, web1)):
            looked = lab.exec_in("dns-test", f"nslookup web-{i}.nginx.default.svc.cluster.local")
            assert pod["status"]["podIP"] in looked.stdout, looked.stdout + looked.stderr
            lab.kubelite("exec", f"web-{i}", "--", "sh", "-c", "echo $(hostname) > /usr/share/nginx/html/index.html")

        def pages() -> list[str]:
            # The short names, through the pod's DNS search path (busybox's nslookup ignores it; wget does not).
            return [lab.exec_in("dns-test", f"timeout 10 wget -q -O - http://web-{i}.nginx").stdout.strip()
                    for i in (0, 1)]

        assert pages() == ["web-0", "web-1"]
        uids = {p["metadata"]["name"]: p["metadata"]["uid"] for p in pods(lab, "app=nginx")}
        lab.kubelite("delete", "pod", "-l", "app=nginx", timeout=120)
        wait_until(lambda: all(p["metadata"]["uid"] != uids.get(p["metadata"]["name"]) and ready(p)
                               for p in pods(lab, "app=nginx")) and len(pods(lab, "app=nginx")) == 2,
                   timeout=180, what="web-0 and web-1 made again")
        wait_until(lambda: pages() == ["web-0", "web-1"], timeout=60, what="the pages kept")
        lab.kubelite("scale", "sts", "web", "--replicas", "1")
        wait_until(lambda: [p["metadata"]["name"] for p in pods(lab, "app=nginx")] == ["web-0"], timeout=120,
                   what="scaled down to web-0")
        assert "www-web-1" in {c["metadata"]["name"] for c in lab.get_json("pvc")["items"]}
        lab.kubelite("scale", "sts", "web", "--replicas", "2")
        lab.kubelite("rollout", "status", "sts/web", "--timeout", "180s", timeout=210)
        wait_until(lambda: pages() == ["web-0", "web-1"], timeout=60, what="web-1's page back")
    finally:
        _delete(lab, "pod", "dns-test")
        _delete(lab, "-f", str(DOCS / "web.yaml"))
        for i in (0, 1):
            _delete(lab, "pvc", f"www-web-{i}")


def test_documentation_daemonset_on_every_node_including_a_new_one(lab: Lab) -> None:
    """The fluentd-elasticsearch DaemonSet applies unchanged in kube-system: one ready pod on every node; a node
    added with `kubelite up --add-node` gets one too. (Runs last: the lab keeps the fourth node.)"""
    lab.kubelite("apply", "-f", str(DOCS / "daemonset.yaml"))

    def on_nodes() -> list[str]:
        items = lab.get_json("pods", "-n", "kube-system", "-l", "name=fluentd-elasticsearch")["items"]
        return sorted(p["spec"]["nodeName"] for p in items if ready(p) and not p["metadata"].get("deletionTimestamp"))

    try:
        wait_until(lambda: on_nodes() == ["n1", "n2", "n3"], timeout=180, what="a pod on each node")
        added = lab.kubelite("up", "--add-node", "--name", lab.name, timeout=300)
        assert "node n4 is Ready" in added.stderr, added.stderr
        wait_until(lambda: on_nodes() == ["n1", "n2", "n3", "n4"], timeout=120, what="a pod on the new node")
        status = lab.kubelite("rollout", "status", "ds/fluentd-elasticsearch", "-n", "kube-system", "--timeout",
                              "60s", timeout=90)
        assert status.stdout.strip().endswith('daemon set "fluentd-elasticsearch" successfully rolled out')
        row = lab.kubelite("get", "ds", "-n", "kube-system").stdout.splitlines()[1].split()
        assert row[:6] == ["fluentd-elasticsearch", "4", "4", "4", "4", "4"], row
    finally:
        _delete(lab, "-f", str(DOCS / "daemonset.yaml"))
