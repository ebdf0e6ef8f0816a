"""The proxier against a real apiserver, writing real rules (iptables or nftables) into a scratch network namespace."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import urllib.request
from pathlib import Path

import testpki
from unit.proxy.objects import slice_of, subset, svc

from client.api import Client
from integration.proxy.proxyhelp import (
    counters,
    eventually,
    flush_everything,
    free_port,
    in_netns,
    installed,
    jump_counts,
    kubelite,
    nft_rendered,
    nft_table,
    proxier_config,
    proxy_rules,
    root_conftest,
    running_proxier,
    saved,
    synced_to,
)
from proxy import chains, nftrules
from proxy.rules import Node, render_rules


async def create_web(client: Client, name: str, ip: str, endpoints: list[str], **spec: object) -> None:
    spec.setdefault("ports", [{"name": "http", "port": 80}])
    await client.create(svc(name, cluster_ip=ip, **spec))
    await client.create(slice_of(name, subset(endpoints, ports=[("http", 8080, "TCP")])))


async def set_endpoints(client: Client, name: str, endpoints: list[str]) -> None:
    current = await client.get("endpointslices", f"{name}-abcde", "default")
    del current.endpoints[:]
    current.endpoints.extend(slice_of(name, subset(endpoints, ports=[("http", 8080, "TCP")])).endpoints)
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


async def test_kernel_rules_equal_the_rendered_rules(client: Client, node_ns: str, mode: str) -> None:
    """After a sync, the kernel shows exactly the rendered rules: iptables-save the payload's rules and each jump
    once; `nft list table` every rendered chain, rule and map element (written over netlink)."""
    await fixture_services(client)
    async with running_proxier(client, proxier_config(node_ns, mode)) as proxier:
        await synced_to(proxier, "default/empty")
        services = await client.list_all("services")
        slices = await client.list_all("endpointslices")
        if mode == "iptables":
            assert proxy_rules(node_ns) == rendered_rules(render_rules(services, slices, Node("n1")))
            assert set(jump_counts(node_ns).values()) == {1}
        else:
            assert nft_table(node_ns) == nft_rendered(nftrules.compute_state(services, slices, Node("n1")))
        for key in ("default/web", "default/np", "default/sticky", "default/empty"):
            assert key in proxier.state


async def test_endpoint_change_rewrites_only_that_services_chains(client: Client, node_ns: str) -> None:
    """iptables: an endpoint change is a partial sync: the kernel keeps the other chains (their packet counters
    survive)."""
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


def nft_handles(ns: str) -> dict[str, list[str]]:
    """Every rule of the table with its handle (a rewritten rule gets a new one), per chain."""
    out: dict[str, list[str]] = {}
    chain = ""
    for line in in_netns(ns, "nft", "-a", "list", "table", "ip", nftrules.TABLE).stdout.splitlines():
        line = line.strip()
        if line.startswith("chain "):
            chain = line.split()[1]
        elif "# handle" in line and chain and not line.startswith(("type ", "chain ")):
            out.setdefault(chain, []).append(line)
    return out


async def test_nft_endpoint_change_rewrites_one_small_chain_and_no_map(client: Client, node_ns: str) -> None:
    """nftables: an endpoint change is one transaction over netlink that rewrites the Service's chain only: every
    other rule keeps its handle, and no map element changes."""
    await create_web(client, "web", "10.96.0.5", ["10.244.1.5"])
    await create_web(client, "api", "10.96.0.6", ["10.244.1.6", "10.244.2.6"], type="NodePort",
                     ports=[{"name": "http", "port": 80, "node_port": 30080}])
    async with running_proxier(client, proxier_config(node_ns, "nftables")) as proxier:
        await synced_to(proxier, "default/api")
        before, maps = nft_handles(node_ns), nft_table(node_ns)[1]  # type: ignore[index]
        partials = proxier.partial_syncs
        await set_endpoints(client, "api", ["10.244.1.6", "10.244.3.6"])
        await eventually(lambda: proxier.partial_syncs > partials and not proxier._dirty, what="partial sync")
        chain = next(c for c in proxier.state["default/api"].chains if c.startswith("service-"))
        assert proxier.last_changes is not None
        assert proxier.last_changes.written == (chain,) and proxier.last_changes.elements == 0
        after = nft_handles(node_ns)
        assert {c: r for c, r in after.items() if c != chain} == {c: r for c, r in before.items() if c != chain}
        assert any("dnat to 10.244.3.6:8080" in r for r in after[chain])
        assert not any("10.244.2.6" in r for r in after[chain])
        assert nft_table(node_ns)[1] == maps  # type: ignore[index]


async def test_flushed_tables_are_detected_and_rewritten(client: Client, node_ns: str, mode: str) -> None:
    """After someone flushes and deletes every chain (or the table), the proxier notices and restores the same
    rules."""
    await fixture_services(client)
    async with running_proxier(client, proxier_config(node_ns, mode)) as proxier:
        await synced_to(proxier, "default/empty")
        want = installed(node_ns, mode)
        full = proxier.full_syncs
        flush_everything(node_ns, mode)
        assert not installed(node_ns, mode)
        # The rules are back before the sync that wrote them has finished counting itself.
        await eventually(lambda: installed(node_ns, mode) == want and proxier.full_syncs > full, timeout=5,
                         what="rules restored by a full sync")
        if mode == "iptables":
            assert set(jump_counts(node_ns).values()) == {1}
        assert proxier.metrics.flushes._value.get() >= 1


async def test_restart_leaves_no_duplicates_and_removes_stale_chains(client: Client, node_ns: str,
                                                                      mode: str) -> None:
    """A new proxier over an old one's rules keeps one copy of everything and drops chains of deleted Services."""
    await fixture_services(client)
    async with running_proxier(client, proxier_config(node_ns, mode)) as proxier:
        await synced_to(proxier, "default/empty")
        first = installed(node_ns, mode)
        sticky = proxier.state["default/sticky"]
    await client.delete("services", "sticky", "default")
    async with running_proxier(client, proxier_config(node_ns, mode)) as proxier:
        now = installed(node_ns, mode)
        if mode == "iptables":
            assert set(jump_counts(node_ns).values()) == {1}
            assert now == {r for r in first if "default/sticky" not in r}
            assert not set(sticky.owned) & set(saved(node_ns)["nat"].chains)
        else:
            services = await client.list_all("services")
            slices = await client.list_all("endpointslices")
            assert now == nft_rendered(nftrules.compute_state(services, slices, Node("n1")))
            assert not set(sticky.chains) & set(now[0]) and not set(sticky.sets) & set(now[1])


async def test_cleanup_removes_everything_the_proxy_installed(client: Client, node_ns: str) -> None:
    """`kubelite proxy --cleanup --netns` removes what both modes installed and leaves only other software's rules
    (an iptables chain, an nftables table)."""
    await fixture_services(client)
    in_netns(node_ns, "iptables", "-t", "nat", "-N", "OTHER")
    in_netns(node_ns, "iptables", "-t", "nat", "-A", "PREROUTING", "-j", "OTHER")
    in_netns(node_ns, "nft", "add", "table", "ip", "other")
    for mode in ("iptables", "nftables"):
        async with running_proxier(client, proxier_config(node_ns, mode)) as proxier:
            await synced_to(proxier, "default/empty")
    assert proxy_rules(node_ns) and nft_table(node_ns)
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
    assert nft_table(node_ns) is None
    assert in_netns(node_ns, "nft", "list", "table", "ip", "other").returncode == 0


def has_chain(ns: str, mode: str, service: str) -> bool:
    """Whether Service `service` (port http, TCP) has its chain in the kernel."""
    if mode == "iptables":
        return chains.service_chain(f"default/{service}:http", "TCP") in saved(ns)["nat"].chains
    table = nft_table(ns)
    return table is not None and any(c.endswith(f"-default/{service}/tcp/http") and c.startswith("service-")
                                     for c in table[0])


async def test_daemon_runs_inside_the_node_namespace(etcd: str, node_ns: str, tmp_path: Path, mode: str) -> None:
    """`kubelite proxy --mode` started inside the node's namespace syncs rules, serves metrics, and leaves rules
    on SIGTERM."""
    sock = tmp_path / "api.sock"
    api = await root_conftest().start_apiserver(etcd, listen=["127.0.0.1:0", f"unix://{sock}"])
    try:
        async with api.client() as client:
            await create_web(client, "web", "10.96.0.5", ["10.244.1.5"])
            port = free_port()
            proc = await asyncio.create_subprocess_exec(
                "nsenter", f"--net=/run/netns/{node_ns}", "--", kubelite(), "proxy", "--server", f"unix://{sock}",
                *testpki.get().component_flags(),
                "--node-name", "n1", "--mode", mode, "--metrics-port", str(port), "--metrics-address", "127.0.0.1",
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
            try:
                await eventually(lambda: has_chain(node_ns, mode, "web"), timeout=20, what="web's chain")
                await create_web(client, "api", "10.96.0.6", ["10.244.1.6"])
                await eventually(lambda: has_chain(node_ns, mode, "api"), timeout=5, what="api's chain")
                body = in_netns(node_ns, "python3", "-c", "import urllib.request; print(urllib.request.urlopen("
                                f"'http://127.0.0.1:{port}/metrics', timeout=5).read().decode())").stdout
                assert "kubelite_proxy_sync_proxy_rules_duration_seconds_bucket" in body
                assert "kubelite_proxy_sync_proxy_rules_last_timestamp_seconds" in body
                table = "nat" if mode == "iptables" else "kubelite"
                assert f'kubelite_proxy_iptables_rules{{table="{table}"}}' in body
            finally:
                proc.send_signal(signal.SIGTERM)
                _, err = await asyncio.wait_for(proc.communicate(), 20)
            assert proc.returncode == 0, err.decode()
            assert b"rules_synced" in err
            assert has_chain(node_ns, mode, "api")  # a stop is not a cleanup
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
    assert r.stderr.startswith("error: refusing to write proxy rules into /proc/self/ns/net")
    assert len(r.stderr.strip().splitlines()) == 1


async def test_metrics_report_syncs_and_rules(client: Client, node_ns: str, mode: str) -> None:
    """The metrics endpoint has the sync duration histogram, the last sync time and the rule counts, kept exact
    (iptables: rules per table; nftables: rules and map elements of the table)."""
    await fixture_services(client)
    port = free_port()

    def scrape() -> dict[str, str]:
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        return dict(line.rsplit(" ", 1) for line in body.splitlines() if line and not line.startswith("#"))

    def counted() -> dict[str, int]:
        if mode == "iptables":
            found = proxy_rules(node_ns)
            return {t: sum(1 for r in found if r.startswith(f"{t}:")) for t in ("nat", "filter")}
        table_chains, maps = nft_table(node_ns)  # type: ignore[misc]
        return {"kubelite": sum(len(r) for r in table_chains.values()) + sum(len(e) for e in maps.values())}

    def gauges(lines: dict[str, str]) -> dict[str, int]:
        return {t: int(float(lines[f'kubelite_proxy_iptables_rules{{table="{t}"}}'])) for t in counted()}

    async with running_proxier(client, proxier_config(node_ns, mode, metrics_port=port,
                                                      metrics_address="127.0.0.1")) as proxier:
        await synced_to(proxier, "default/empty")
        lines = await asyncio.to_thread(scrape)
        assert float(lines['kubelite_proxy_sync_proxy_rules_duration_seconds_count{mode="full"}']) >= 1
        assert float(lines["kubelite_proxy_sync_proxy_rules_last_timestamp_seconds"]) > 1.7e9
        assert gauges(lines) == counted()
        partials = proxier.partial_syncs
        await client.delete("services", "sticky", "default")
        await synced_to(proxier, "default/sticky", present=False)
        await set_endpoints(client, "empty", ["10.244.1.8"])
        await eventually(lambda: proxier.partial_syncs >= partials + 2 and not proxier._dirty,
                         what="empty has an endpoint")
        lines = await asyncio.to_thread(scrape)
        assert float(lines['kubelite_proxy_sync_proxy_rules_duration_seconds_count{mode="partial"}']) >= 1
        assert gauges(lines) == counted()
