"""The proxier against a real apiserver, writing real iptables rules into a scratch network namespace."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import urllib.request
from pathlib import Path

import testpki
from unit.proxy.objects import eps, subset, svc

from api.pb import core_pb2
from client.api import Client
from integration.proxy.proxyhelp import (
    counters,
    eventually,
    free_port,
    in_netns,
    jump_counts,
    kubelite,
    proxier_config,
    proxy_rules,
    root_conftest,
    running_proxier,
    saved,
    synced_to,
)
from proxy import chains
from proxy.rules import Node, render_rules


async def create_web(client: Client, name: str, ip: str, endpoints: list[str], **spec: object) -> None:
    spec.setdefault("ports", [{"name": "http", "port": 80}])
    await client.create(svc(name, cluster_ip=ip, **spec))
    await client.create(eps(name, subset(endpoints, ports=[("http", 8080, "TCP")])))


async def set_endpoints(client: Client, name: str, endpoints: list[str]) -> None:
    current = await client.get("endpoints", name, "default")
    del current.subsets[:]
    current.subsets.add().CopyFrom(core_pb2.EndpointSubset(**subset(endpoints, ports=[("http", 8080, "TCP")])))
    await client.update(current)


async def fixture_services(client: Client) -> None:
    await create_web(client, "web", "10.96.0.5", ["10.244.1.5", "10.244.2.5", "10.244.3.5"])
    await create_web(client, "np", "10.96.0.6", ["10.244.1.6"], type="NodePort",
                     ports=[{"name": "http", "port": 80, "node_port": 30080}])
    await create_web(client, "sticky", "10.96.0.7", ["10.244.1.7", "10.244.2.7"], session_affinity="ClientIP")
    await create_web(client, "empty", "10.96.0.8", [])


def rendered_rules(payload: str) -> set[str]:
    out, table = set(), ""
    for line in payload.splitlines():
        if line.startswith("*"):
            table = line[1:]
        elif line.startswith("-A "):
            out.add(f"{table}:{line}")
    return out


async def test_kernel_rules_equal_the_rendered_rules(client: Client, node_ns: str) -> None:
    """After a sync, iptables-save in the node namespace shows exactly render_rules' rules and each jump once."""
    await fixture_services(client)
    async with running_proxier(client, proxier_config(node_ns)) as proxier:
        await synced_to(proxier, "default/empty")
        services = await client.list_all("services")
        endpoints = await client.list_all("endpoints")
        assert proxy_rules(node_ns) == rendered_rules(render_rules(services, endpoints, Node("n1")))
        assert set(jump_counts(node_ns).values()) == {1}
        for key in ("default/web", "default/np", "default/sticky", "default/empty"):
            assert key in proxier.state


async def test_endpoint_change_rewrites_only_that_services_chains(client: Client, node_ns: str) -> None:
    """An endpoint change is a partial sync: the kernel keeps the other chains (their packet counters survive)."""
    await create_web(client, "web", "10.96.0.5", ["10.244.1.5"])
    await create_web(client, "api", "10.96.0.6", ["10.244.1.6", "10.244.2.6"])
    # Traffic to web's cluster IP from inside the namespace counts packets on web's rules.
    # (A veth pair kept inside the namespace: this kernel has no dummy interfaces.)
    in_netns(node_ns, "ip", "link", "add", "out0", "type", "veth", "peer", "name", "out1")
    for link in ("out0", "out1"):
        in_netns(node_ns, "ip", "link", "set", link, "up")
    in_netns(node_ns, "ip", "route", "add", "10.0.0.0/8", "dev", "out0")
    async with running_proxier(client, proxier_config(node_ns)) as proxier:
        await synced_to(proxier, "default/api")
        in_netns(node_ns, "python3", "-c", "import socket\nfor _ in range(3):\n s = socket.socket()"
                 "\n s.setblocking(False)\n s.connect_ex(('10.96.0.5', 80))\n s.close()")
        before = counters(node_ns, "nat")
        # The three SYNs went KUBE-SERVICES -> web's KUBE-SVC -> its KUBE-SEP's DNAT.
        web_rules = {rule: c for rule, c in before.items() if c[0] >= 3 and "default/web:http" in rule}
        assert len(web_rules) == 3, before
        partials = proxier.partial_syncs

        await set_endpoints(client, "api", ["10.244.1.6", "10.244.3.6"])
        await eventually(lambda: proxier.partial_syncs > partials and not proxier._dirty, what="partial sync")

        api_svc = chains.service_chain("default/api:http", "TCP")
        gone = chains.endpoint_chain("default/api:http", "TCP", "10.244.2.6:8080")
        added = chains.endpoint_chain("default/api:http", "TCP", "10.244.3.6:8080")
        assert proxier.last_changes is not None
        assert sorted(proxier.last_changes.written) == sorted(f"nat/{c}" for c in (api_svc, gone, added))
        after = counters(node_ns, "nat")
        for rule, counter in before.items():
            if counter[0]:  # every rule that had counted packets is still there, counters intact
                assert after[rule] == counter, f"rewritten: {rule}"
        services_rules = {r: c for r, c in before.items() if r.startswith("-A KUBE-SERVICES")}
        assert all(after[r] == c for r, c in services_rules.items())
        nat = saved(node_ns)["nat"]
        assert gone not in nat.chains and added in nat.chains
        assert any(r.startswith(f"-A {api_svc}") and added in r for r in nat.rules)


async def test_flushed_tables_are_detected_and_rewritten(client: Client, node_ns: str) -> None:
    """After someone flushes and deletes every chain, the proxier notices and restores the same rules."""
    await fixture_services(client)
    async with running_proxier(client, proxier_config(node_ns)) as proxier:
        await synced_to(proxier, "default/empty")
        want = proxy_rules(node_ns)
        full = proxier.full_syncs
        for table in ("nat", "filter"):
            in_netns(node_ns, "iptables", "-t", table, "-F")
            in_netns(node_ns, "iptables", "-t", table, "-X")
        assert proxy_rules(node_ns) == set()
        # The rules are back before the sync that wrote them has finished counting itself.
        await eventually(lambda: proxy_rules(node_ns) == want and proxier.full_syncs > full, timeout=5,
                         what="rules restored by a full sync")
        assert set(jump_counts(node_ns).values()) == {1}
        assert proxier.metrics.flushes._value.get() >= 1


async def test_restart_leaves_no_duplicates_and_removes_stale_chains(client: Client, node_ns: str) -> None:
    """A new proxier over an old one's rules keeps one copy of everything and drops chains of deleted Services."""
    await fixture_services(client)
    async with running_proxier(client, proxier_config(node_ns)) as proxier:
        await synced_to(proxier, "default/empty")
        first = proxy_rules(node_ns)
        sticky_chains = set(proxier.state["default/sticky"].owned)
    await client.delete("services", "sticky", "default")
    async with running_proxier(client, proxier_config(node_ns)):
        now = proxy_rules(node_ns)
        assert set(jump_counts(node_ns).values()) == {1}
        assert now == {r for r in first if "default/sticky" not in r}
        assert not sticky_chains & set(saved(node_ns)["nat"].chains)


async def test_cleanup_removes_everything_the_proxy_installed(client: Client, node_ns: str) -> None:
    """`kubelite proxy --cleanup --netns` leaves only other software's rules."""
    await fixture_services(client)
    in_netns(node_ns, "iptables", "-t", "nat", "-N", "OTHER")
    in_netns(node_ns, "iptables", "-t", "nat", "-A", "PREROUTING", "-j", "OTHER")
    async with running_proxier(client, proxier_config(node_ns)) as proxier:
        await synced_to(proxier, "default/empty")
    assert proxy_rules(node_ns)
    proc = await asyncio.create_subprocess_exec(kubelite(), "proxy", "--cleanup", "--netns", node_ns,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    assert out.decode().startswith("removed ")
    state = saved(node_ns)
    assert state["nat"].chains == ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING", "OTHER")
    assert state["nat"].rules == ("-A PREROUTING -j OTHER",)
    assert state["filter"].rules == ()
    assert state["filter"].chains == ("INPUT", "FORWARD", "OUTPUT")


async def test_daemon_runs_inside_the_node_namespace(etcd: str, node_ns: str, tmp_path: Path) -> None:
    """`kubelite proxy` started inside the node's namespace syncs rules, serves metrics, and leaves rules on SIGTERM."""
    sock = tmp_path / "api.sock"
    api = await root_conftest().start_apiserver(etcd, listen=["127.0.0.1:0", f"unix://{sock}"])
    try:
        async with api.client() as client:
            await create_web(client, "web", "10.96.0.5", ["10.244.1.5"])
            port = free_port()
            proc = await asyncio.create_subprocess_exec(
                "nsenter", f"--net=/run/netns/{node_ns}", "--", kubelite(), "proxy", "--server", f"unix://{sock}",
                *testpki.get().component_flags(),
                "--node-name", "n1", "--metrics-port", str(port), "--metrics-address", "127.0.0.1",
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
            try:
                web_chain = chains.service_chain("default/web:http", "TCP")
                await eventually(lambda: web_chain in saved(node_ns)["nat"].chains, timeout=20, what="web's chain")
                await create_web(client, "api", "10.96.0.6", ["10.244.1.6"])
                api_chain = chains.service_chain("default/api:http", "TCP")
                await eventually(lambda: api_chain in saved(node_ns)["nat"].chains, timeout=5, what="api's chain")
                body = in_netns(node_ns, "python3", "-c", "import urllib.request; print(urllib.request.urlopen("
                                f"'http://127.0.0.1:{port}/metrics', timeout=5).read().decode())").stdout
                assert "kubelite_proxy_sync_proxy_rules_duration_seconds_bucket" in body
                assert "kubelite_proxy_sync_proxy_rules_last_timestamp_seconds" in body
                assert 'kubelite_proxy_iptables_rules{table="nat"}' in body
            finally:
                proc.send_signal(signal.SIGTERM)
                _, err = await asyncio.wait_for(proc.communicate(), 20)
            assert proc.returncode == 0, err.decode()
            assert b"rules_synced" in err
            assert api_chain in saved(node_ns)["nat"].chains  # a stop is not a cleanup
    finally:
        await api.stop()


def test_refuses_the_root_namespace(tmp_path: Path) -> None:
    """Started in this (root) namespace without --allow-root-netns, the proxy exits with one line and writes nothing."""
    empty = tmp_path / "bin"
    empty.mkdir()
    # No iptables, nsenter or conntrack on PATH: even a wrong verdict could not touch the host's rules.
    env = {**os.environ, "PATH": str(empty)}
    r = subprocess.run([kubelite(), "proxy", "--server", "127.0.0.1:1", "--node-name", "n1"], capture_output=True,
                       text=True, timeout=30, env=env, check=False)
    assert r.returncode == 1
    assert r.stderr.startswith("error: refusing to write iptables rules into /proc/self/ns/net")
    assert len(r.stderr.strip().splitlines()) == 1


async def test_metrics_report_syncs_and_rules(client: Client, node_ns: str) -> None:
    """The metrics endpoint has the sync duration histogram, the last sync time and the rule counts, kept exact."""
    await fixture_services(client)
    port = free_port()

    def scrape() -> dict[str, str]:
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        return dict(line.rsplit(" ", 1) for line in body.splitlines() if line and not line.startswith("#"))

    def nat_rules() -> int:
        return sum(1 for r in proxy_rules(node_ns) if r.startswith("nat:"))

    async with running_proxier(client, proxier_config(node_ns, metrics_port=port,
                                                      metrics_address="127.0.0.1")) as proxier:
        await synced_to(proxier, "default/empty")
        lines = await asyncio.to_thread(scrape)
        assert float(lines['kubelite_proxy_sync_proxy_rules_duration_seconds_count{mode="full"}']) >= 1
        assert float(lines["kubelite_proxy_sync_proxy_rules_last_timestamp_seconds"]) > 1.7e9
        assert float(lines['kubelite_proxy_iptables_rules{table="nat"}']) == nat_rules()
        await client.delete("services", "sticky", "default")
        await set_endpoints(client, "empty", ["10.244.1.8"])
        await synced_to(proxier, "default/sticky", present=False)
        await eventually(lambda: "default/empty" in proxier.state
                         and proxier.state["default/empty"].owned.get(
                             chains.service_chain("default/empty:http", "TCP")), what="empty has an endpoint")
        lines = await asyncio.to_thread(scrape)
        assert float(lines['kubelite_proxy_sync_proxy_rules_duration_seconds_count{mode="partial"}']) >= 1
        assert float(lines['kubelite_proxy_iptables_rules{table="nat"}']) == nat_rules()
        filter_rules = sum(1 for r in proxy_rules(node_ns) if r.startswith("filter:"))
        assert float(lines['kubelite_proxy_iptables_rules{table="filter"}']) == filter_rules
