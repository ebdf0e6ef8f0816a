"""A highly available control plane on a lab of its own (`up --control-planes 3`): `kubelite status` shows the etcd
members and the lease holders; losing a control-plane machine, or the etcd leader, leaves the API writable again
within 5 s with every acknowledged write kept, new pods scheduled and a Service answering."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from client.api import Client
from deploy.lab import cluster, failover
from deploy.lab import status as lab_status

from .lab import Lab, wait_until
from .test_loadbalancer import FETCH
from .test_networking import ROOT, SCRIPT, apply, deployment, get, service

WRITABLE_WITHIN = 5.0


@pytest.fixture(scope="module")
def ha(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """Three control-plane machines and two nodes, with web behind a Service and a client pod."""
    if os.geteuid() != 0:
        pytest.fail("end-to-end tests need root (network namespaces, containerd)")
    os.environ.setdefault("KUBELITE_CONFIG", str(tmp_path_factory.mktemp("kubelite-config") / "config.yaml"))
    name = f"ha{secrets.token_hex(2)}"
    lines: list[str] = []
    try:
        plan = asyncio.run(cluster.up(name, 2, progress=lines.append, timeout=120, ingress_nodes=(),
                                      control_planes=3))
    except BaseException:
        print("\n".join(lines))
        asyncio.run(cluster.down(name, progress=lambda _: None))
        raise
    lab = Lab(plan)
    try:
        lab.kubelite("apply", "-f", str(ROOT / "examples" / "client.yaml"))
        apply(lab, web_serving_root(), service("web", "web"))
        lab.kubelite("rollout", "status", "deployment/web", "--timeout", "120s", timeout=150)
        lab.kubelite("wait", "--for=condition=Ready", "pod/client", "--timeout", "90", timeout=120)
        yield lab
    except BaseException:
        print(lab.logs_text())
        raise
    finally:
        asyncio.run(cluster.down(name, progress=lambda _: None))


def web_serving_root() -> dict:
    """web as the networking tests run it, also answering `GET /` (what `kubelite chaos run`'s load client asks)."""
    web = deployment("web")
    container = web["spec"]["template"]["spec"]["containers"][0]
    container["args"] = [SCRIPT.replace("for p in bar foo testpath;", "for p in bar foo testpath index.html;")]
    assert container["args"] != [SCRIPT]
    return web


def status_sections(lab: Lab) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """`kubelite status` as a user reads it: etcd member -> cells, leader-elected component -> cells."""
    out = lab.kubelite("status", "--name", lab.name).stdout.splitlines()
    members, leases = {}, {}
    section: dict[str, list[str]] | None = None
    for line in out:
        if line.startswith("ETCD MEMBER"):
            section = members
        elif line.startswith("LEADER "):
            section = leases
        elif not line.strip():
            section = None
        elif section is not None:
            cells = line.split()
            section[cells[0]] = cells[1:]
    return members, leases


def test_status_shows_etcd_members_their_leader_and_the_lease_holders(ha: Lab) -> None:
    """Three healthy members, exactly one marked leader; the scheduler's and controller-manager's leases each held by
    one of the control planes' daemons."""
    members, leases = status_sections(ha)
    assert sorted(members) == ["cp", "cp2", "cp3"], members
    assert all(cells[1] == "healthy" for cells in members.values()), members
    assert sum("*" in cells for cells in members.values()) == 1, members
    for component in ("scheduler", "controller-manager"):
        holder_daemon = leases[component][-1]
        assert holder_daemon in {cluster.daemon_name(m.role, component) for m in ha.plan.control_planes}, leases


def node_not_ready_events(lab: Lab) -> int:
    """How many times a node, or a pod because of its node, was reported NotReady."""
    events = lab.get_json("events", "--all-namespaces", "--field-selector", "reason=NodeNotReady")["items"]
    return sum(e.get("count", 1) for e in events)


def check_survives(lab: Lab, fault: str, inject, recover) -> float:  # type: ignore[no-untyped-def]
    """Write and call the Service throughout `inject()`: the Service answers at least 95% of the time, the API is
    writable again within 5 s, every acknowledged write is there, a new Deployment's pods run and the Service
    answers by name; then `recover()`. Returns the seconds to writable."""
    conn = cluster.client_config_for(lab.plan)
    probe = failover.WriteProbe(conn, prefix=fault)
    # The Service's cluster IP from a node, ten times a second through the fault (no apiserver on that path).
    ip = lab.get_json("service", "web")["spec"]["clusterIP"]
    poller = subprocess.Popen(["nsenter", f"--net=/run/netns/{lab.plan.nodes[0].netns}", "--", sys.executable, "-c",
                               FETCH, f"http://{ip}/bar", "100000", "0.1", "9"], stdout=subprocess.PIPE, text=True)

    async def run() -> float:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(probe.run(8.0))
            await asyncio.sleep(1.0)
            t0 = time.monotonic()
            await inject()
        took = probe.writable_after(t0)
        assert took is not None, f"no write acknowledged after {fault}: {probe.failed[-3:]}"
        return took

    not_ready_before = node_not_ready_events(lab)
    took = asyncio.run(run())
    answers = [json.loads(line)["body"] for line in poller.communicate(timeout=60)[0].splitlines()]
    try:
        served = sum(a.startswith("web ") for a in answers)
        assert len(answers) > 30 and served >= 0.95 * len(answers), \
            f"the Service answered {served} of {len(answers)} requests during {fault}: {answers[-5:]}"
        assert took < WRITABLE_WITHIN, f"API writable {took:.2f}s after {fault}"
        # Nodes kept renewing their Leases through it: none was marked lost, so no pod left the Service.
        assert node_not_ready_events(lab) == not_ready_before, f"a node was marked NotReady during {fault}"
        assert len(probe.acknowledged) > 100, len(probe.acknowledged)

        async def stored() -> set[str]:
            async with Client(conn) as client:
                return {cm.metadata.name for cm in (await client.list("configmaps", namespace="default")).items}

        missing = set(probe.acknowledged) - asyncio.run(stored())
        assert not missing, f"acknowledged writes lost after {fault}: {sorted(missing)[:10]}"
        app = f"after-{fault}"
        apply(lab, deployment(app))
        lab.kubelite("rollout", "status", f"deployment/{app}", "--timeout", "60s", timeout=90)
        _, body = wait_until(lambda: (r := get(lab, "http://web/bar"))[0] == 0 and r, timeout=20,
                                what=f"web answering after {fault}")
        assert body.startswith("web "), body
        lab.kubelite("delete", "deployment", app)
    except AssertionError:
        print(lab.logs_text(300))  # the daemons' own account of the fault, shown with the failure
        raise
    finally:
        recover()
    return took


def test_losing_a_control_plane_machine_leaves_the_cluster_working(ha: Lab) -> None:
    """Stop the machine holding the scheduler's lease (every daemon on it): writes resume within 5 s through another
    apiserver, none acknowledged is lost, the scheduler fails over (a new Deployment's pods run), web answers; the
    status shows the member unhealthy and the leases held elsewhere; it then rejoins and is healthy."""
    _, leases = status_sections(ha)
    victim = next(m.role for m in ha.plan.control_planes
                  if leases["scheduler"][-1] == cluster.daemon_name(m.role, "scheduler"))
    stopped: list[str] = []

    async def inject() -> None:
        await cluster.stop_control_plane_machine(ha.name, victim)
        stopped.append(victim)

    def recover() -> None:
        members, leases = status_sections(ha)
        assert members[victim][1] == "unhealthy", members
        for component in ("scheduler", "controller-manager"):
            assert leases[component][-1] != cluster.daemon_name(victim, component), leases
        asyncio.run(cluster.start_control_plane_machine(ha.name, victim))
        wait_until(lambda: status_sections(ha)[0][victim][1] == "healthy", timeout=30, what=f"{victim} healthy")

    took = check_survives(ha, f"stop-{victim}", inject, recover)
    print(f"\nAPI writable {took:.2f}s after stopping control plane {victim}")


def test_killing_the_etcd_leader_leaves_the_cluster_working(ha: Lab) -> None:
    """SIGKILL the leading etcd member: another is elected, writes resume within 5 s with none acknowledged lost, pods
    are scheduled, web answers; the killed member comes back (watchdog) and is healthy."""
    killed: list[str] = []

    async def inject() -> None:
        killed.append(await asyncio.to_thread(failover.kill_etcd_leader, ha.plan))

    def recover() -> None:
        wait_until(lambda: all(m["healthy"] for m in lab_status.etcd_members(ha.plan)), timeout=30,
                   what="every etcd member healthy again")
        assert failover.etcd_leader(ha.plan)

    took = check_survives(ha, "kill-etcd-leader", inject, recover)
    print(f"\nAPI writable {took:.2f}s after killing the etcd leader ({killed})")


def check_chaos_report(lab: Lab, out: Path, scenario: str, *flags: str) -> dict:
    """`kubelite chaos run SCENARIO` on the three control planes: it passes, the API was writable again within 5 s,
    no invariant broke, every acknowledged write is there, nothing is left behind, and the timeline is a PNG."""
    result = lab.kubelite("chaos", "run", scenario, "--report", str(out), *flags, timeout=240)
    print(result.stdout)
    report = json.loads((out / "report.json").read_text())
    assert report["ok"], result.stdout
    assert report["invariant_violations"] == [] and report["duplicate_pods"] == []
    assert report["writes"]["lost"] == [] and report["writes"]["acked"] > 100
    [fault] = report["faults"]
    assert fault["node"] in {m.role for m in lab.plan.control_planes}, fault
    assert fault["recovery"]["api_writable"] is not None and fault["recovery"]["api_writable"] < WRITABLE_WITHIN
    assert fault["recovery"]["scheduler_lease"] is not None, fault["recovery"]
    assert (out / "timeline.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [ns for ns in lab.get_json("namespaces")["items"] if ns["metadata"]["name"].startswith("chaos-")]
    return fault


def test_chaos_control_plane_stop_keeps_the_api_writable(ha: Lab, tmp_path: Path) -> None:
    """`kubelite chaos run control-plane-stop` stops the machine holding the scheduler's lease for 15 s under the
    live workload; the report shows the API writable within 5 s, the lease taken over, and the machine back."""
    _, leases = status_sections(ha)
    holder = next(m.role for m in ha.plan.control_planes
                  if leases["scheduler"][-1] == cluster.daemon_name(m.role, "scheduler"))
    fault = check_chaos_report(ha, tmp_path / "control-plane-stop", "control-plane-stop")
    assert fault["kind"] == "stop-node" and fault["node"] == holder and fault["end"] - fault["start"] >= 15
    wait_until(lambda: all(m["healthy"] for m in lab_status.etcd_members(ha.plan)), timeout=30,
               what="every etcd member healthy again")


def test_chaos_etcd_leader_kill_keeps_the_api_writable(ha: Lab, tmp_path: Path) -> None:
    """`kubelite chaos run etcd-leader-kill` SIGKILLs the leading etcd member under the live workload; the report
    names the machine, the API was writable within 5 s and the member came back."""
    leader = failover.etcd_leader(ha.plan)
    fault = check_chaos_report(ha, tmp_path / "etcd-leader-kill", "etcd-leader-kill")
    assert fault["kind"] == "kill" and fault["component"] == "etcd" and fault["node"] == leader
    assert fault["recovery"]["component_back"] is not None


def test_chaos_control_plane_partition_keeps_the_api_writable(ha: Lab, tmp_path: Path) -> None:
    """`kubelite chaos run control-plane-partition` cuts one control-plane machine off for 20 s: the majority keeps
    the API writable within 5 s, and when the cut heals the member rejoins without unseating the leader (with
    pre-vote off its term had climbed meanwhile, and writes stopped for seconds after the heal)."""
    fault = check_chaos_report(ha, tmp_path / "control-plane-partition", "control-plane-partition")
    assert fault["kind"] == "partition" and fault["end"] - fault["start"] >= 20
    wait_until(lambda: all(m["healthy"] for m in lab_status.etcd_members(ha.plan)), timeout=30,
               what="every etcd member healthy again")


def test_chaos_scheduler_leader_kill_in_a_rollout(ha: Lab, tmp_path: Path) -> None:
    """`kubelite chaos run scheduler-leader-kill-rollout --rollout-pods 30` rolls a Deployment of its own and kills
    the scheduler holding the lease in the middle: another takes the lease, the rollout completes within its
    maxSurge and maxUnavailable, and the Deployment goes with the run's namespace."""
    out = tmp_path / "rollout"
    fault = check_chaos_report(ha, out, "scheduler-leader-kill-rollout", "--rollout-pods", "30")
    assert fault["kind"] == "kill" and fault["component"] == "scheduler"
    report = json.loads((out / "report.json").read_text())
    assert report["deployment"].endswith("/chaos-rollout")
    assert report["rollout_started"] < fault["start"] < report["rollout_done"], report
    assert max(report["samples"]["desired"]) == 30 and report["samples"]["updated"][-1] == 30
    # No pod outlives the run: the rollout's namespace is gone (checked above) and with it every pod.
    assert not [p for p in ha.get_json("pods", "-A")["items"]
                if p["metadata"]["namespace"].startswith("chaos-")]


def test_a_control_plane_scenario_is_refused_on_one_control_plane(lab: Lab) -> None:
    """On the default lab (one control plane) a scenario needing three is refused before anything breaks."""
    result = lab.kubelite("chaos", "run", "control-plane-stop", check=False)
    assert result.returncode != 0
    assert "needs 3 control-plane machines; the cluster has 1" in result.stderr, result.stderr


def test_status_of_a_single_control_plane_shows_its_one_etcd_member(lab: Lab) -> None:
    """The default lab (one control plane): `kubelite status` lists one healthy etcd member, the leader, and the
    leases held by the control plane's own scheduler and controller-manager."""
    members, leases = status_sections(lab)
    assert list(members) == ["kubelite"], members
    assert members["kubelite"][0] == "https://127.0.0.1:2379" and members["kubelite"][1:3] == ["healthy", "*"]
    assert leases["scheduler"][-1] == "scheduler" and leases["controller-manager"][-1] == "controller-manager"
