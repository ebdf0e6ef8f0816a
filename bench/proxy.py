"""Service proxy, iptables and nftables mode side by side, and the ingress controller (JSON to stdout). Needs root.

For each size (1,000 / 5,000 / 10,000 Services x 5 endpoints) and each mode, in scratch network namespaces
(`kltest-bench-*`, deleted at the end):

- render_s: the whole payload from the API objects: iptables `render_rules` (iptables-restore text); nftables
  `compute_state` plus the netlink batch of every Service (`service_ops`, `encode`);
- kernel_s, the baseline: the kernel's own time for that same payload, into a fresh namespace: iptables
  `iptables-restore < file` (one transaction); nftables the netlink batch sent as one transaction (sendmsg to
  the kernel's answer, nothing of nft's userspace);
- apply_s: the proxier's full sync (render, read back what is there, write) into a fresh namespace, with its
  informer caches filled directly (no apiserver), in a child process started inside the namespace, as the lab
  runs each node's proxy.

At the largest size also, per mode:
- one_endpoint_change_ms: the proxier's partial sync after one EndpointSlice changes (render that Service and
  write what changed), median, min and max of several changes. Target for nftables: under 30 ms;
- change_kernel_ms: the kernel's share of such a change: the same payload written again on its own
  (iptables: the rewritten KUBE-SVC chain through iptables-restore; nftables: the change's netlink batch);
- new_service_ms: a partial sync that adds a Service.

Ingress (at the end, same run): requests per second from a client namespace through `kubelite ingress` (nginx
in a node namespace, routing Host and path to the endpoint) against the same backend (an nginx answering a
small page) reached directly, with the same load generator (keep-alive HTTP/1.1, several connections).

    .venv/bin/python bench/proxy.py [--sizes 1000,5000,10000] [--changes 9] [--modes iptables,nftables]
                                    [--ingress-seconds 8]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from api import logs  # noqa: E402
from api.pb import core_pb2, discovery_pb2  # noqa: E402
from bench.harness import Processes, kubelite  # noqa: E402
from client.api import Client  # noqa: E402
from client.config import ClientConfig  # noqa: E402
from proxy import nfnetlink, nftrules  # noqa: E402
from proxy.proxier import Proxier, ProxierConfig, check_namespace  # noqa: E402
from proxy.rules import Node, render_rules  # noqa: E402

TARGETS = {"nftables_one_endpoint_change_ms_max": 30.0}
ENDPOINTS = 5
MODES = ("iptables", "nftables")


def objects(n: int) -> tuple[list[core_pb2.Service], list[discovery_pb2.EndpointSlice]]:
    services, slices = [], []
    for i in range(n):
        name = f"svc-{i}"
        services.append(core_pb2.Service(
            metadata={"namespace": "bench", "name": name, "resource_version": "1"},
            spec={"cluster_ip": f"10.96.{i // 250}.{i % 250 + 1}",
                  "ports": [{"name": "http", "port": 80, "protocol": "TCP", "target_port": "8080"}]}))
        slices.append(slice_for(name, [i * ENDPOINTS + j for j in range(ENDPOINTS)]))
    return services, slices


def slice_for(name: str, numbers: list[int], version: str = "1") -> discovery_pb2.EndpointSlice:
    ips = [f"10.{244 + k // 62500}.{k // 250 % 250}.{k % 250 + 1}" for k in numbers]
    return discovery_pb2.EndpointSlice(
        metadata={"namespace": "bench", "name": f"{name}-x", "resource_version": version,
                  "labels": {"kubernetes.io/service-name": name}},
        address_type="IPv4", ports=[{"name": "http", "port": 8080, "protocol": "TCP"}],
        endpoints=[{"addresses": [ip], "conditions": {"ready": True}} for ip in ips])


class Netns:
    def __init__(self, role: str = "bench") -> None:
        self.name = f"kltest-{role}-{secrets.token_hex(3)}"

    def __enter__(self) -> str:
        subprocess.run(["ip", "netns", "add", self.name], check=True, timeout=10)
        subprocess.run(["ip", "netns", "exec", self.name, "ip", "link", "set", "lo", "up"], check=True, timeout=10)
        return self.name

    def __exit__(self, *exc: object) -> None:
        subprocess.run(["ip", "netns", "del", self.name], check=False, timeout=30)


def in_ns(ns: str, *argv: str, stdin: str | None = None, timeout: float = 3600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["nsenter", f"--net=/run/netns/{ns}", "--", *argv], input=stdin, text=True,
                          capture_output=True, timeout=timeout, check=True)


def iptables_kernel(payload: str) -> tuple[float, float]:
    """(wall seconds, CPU seconds user+sys) of `iptables-restore < payload-file` in a fresh namespace."""
    with tempfile.NamedTemporaryFile("w", suffix=".rules") as f, Netns() as ns:
        f.write(payload)
        f.flush()
        with open(f.name) as stdin:
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0 = time.perf_counter()
            subprocess.run(["nsenter", f"--net=/run/netns/{ns}", "--", "iptables-restore", "-w"], stdin=stdin,
                           check=True, timeout=3600)
            wall = time.perf_counter() - t0
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def nft_kernel(batch: nfnetlink.Batch) -> float:
    """Wall seconds of one netlink batch (the table's skeleton already in place) in a fresh namespace."""
    with Netns() as ns:
        in_ns(ns, "nft", "-f", "-", stdin=nftrules.skeleton())
        sock = nfnetlink.NftSocket(f"/run/netns/{ns}")
        try:
            t0 = time.perf_counter()
            sock.apply(batch, timeout=3600)
            return time.perf_counter() - t0
        finally:
            sock.close()


def render(mode: str, services: list[core_pb2.Service],
           slices: list[discovery_pb2.EndpointSlice]) -> tuple[float, Any, int]:
    """Best of three: (seconds, payload, its size: lines or messages)."""
    best, payload = float("inf"), None
    for _ in range(3):
        t0 = time.perf_counter()
        if mode == "iptables":
            payload = render_rules(services, slices, Node("bench"))
        else:
            payload = nfnetlink.encode(nftrules.service_ops(nftrules.compute_state(services, slices, Node("bench"))))
        best = min(best, time.perf_counter() - t0)
    size = payload.count("\n") if mode == "iptables" else len(payload.messages)  # type: ignore[union-attr]
    return best, payload, size


def stats(values: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(values), 1), "min": round(min(values), 1),
            "max": round(max(values), 1), "runs": len(values)}


async def apply_and_change(n: int, mode: str, *, changes: int) -> dict[str, Any]:
    """In the child, inside the scratch namespace: a full sync, then one-endpoint changes."""
    services, slices = objects(n)
    out: dict[str, Any] = {}
    config = ProxierConfig(node_name="bench", mode=mode, min_sync_period=0.0)
    check_namespace(config)
    # Never called: the informer caches are filled directly.
    client = Client(ClientConfig(server="127.0.0.1:1", insecure_plaintext=True))
    try:
        proxier = Proxier(client, config)
        proxier.services.store = {f"bench/{s.metadata.name}": s for s in services}
        for es in slices:
            proxier.slices._put(f"bench/{es.metadata.name}", es)
        t0 = time.perf_counter()
        await proxier.sync()
        out["apply_s"] = round(time.perf_counter() - t0, 3)
        assert proxier.full_syncs == 1, "full sync failed"
        out["rules"] = proxier._rule_counts
        if not changes:
            return out
        timings, kernel = [], []
        for c in range(changes):
            i = (c * 7919) % n
            key = f"bench/svc-{i}"
            # One endpoint of Service i replaced by a new address.
            numbers = [i * ENDPOINTS + j for j in range(ENDPOINTS - 1)] + [n * ENDPOINTS + c]
            proxier.slices._put(f"bench/svc-{i}-x", slice_for(f"svc-{i}", numbers, str(2 + c)))
            proxier._dirty.add(key)  # what the EndpointSlice informer's handler does
            t0 = time.perf_counter()
            await proxier.sync()
            timings.append((time.perf_counter() - t0) * 1000)
            changed = proxier.last_changes
            assert changed is not None and proxier.partial_syncs == c + 1
            if mode == "iptables":
                assert not any(w.endswith("/KUBE-SERVICES") for w in changed.written)
                svc_chain = next(c for c in proxier.state[key].owned if c.startswith("KUBE-SVC-"))
                again = f"*nat\n:{svc_chain} - [0:0]\n" + "\n".join(proxier.state[key].owned[svc_chain]) + "\nCOMMIT\n"
                t1 = time.perf_counter()
                await proxier.mode.iptables.restore(again)  # type: ignore[attr-defined]
            else:
                assert len(changed.written) == 1 and changed.elements == 0, changed.written  # one chain, no map
                batch = nfnetlink.encode(list(changed.ops))
                t1 = time.perf_counter()
                await asyncio.to_thread(proxier.mode.socket.apply, batch)  # type: ignore[attr-defined]
            kernel.append((time.perf_counter() - t1) * 1000)
        out["one_endpoint_change_ms"] = stats(timings)
        out["change_kernel_ms"] = stats(kernel)
        new = core_pb2.Service(metadata={"namespace": "bench", "name": "new", "resource_version": "1"},
                               spec={"cluster_ip": "10.96.250.1", "ports": [{"name": "http", "port": 80}]})
        proxier.services.store["bench/new"] = new
        proxier.slices._put("bench/new-x", slice_for("new", [n * ENDPOINTS + changes]))
        proxier._dirty.add("bench/new")
        t0 = time.perf_counter()
        await proxier.sync()
        out["new_service_ms"] = round((time.perf_counter() - t0) * 1000, 1)
    finally:
        await client.close()
    return out


def child(n: int, mode: str, changes: int) -> dict[str, Any]:
    """Run apply_and_change in a fresh scratch namespace, in a child process started inside it."""
    with Netns() as ns:
        r = subprocess.run(["nsenter", f"--net=/run/netns/{ns}", "--", sys.executable, __file__, "--child",
                            "--sizes", str(n), "--modes", mode, "--changes", str(changes)],
                           capture_output=True, text=True, timeout=7200, check=False)
        if r.returncode != 0:
            raise RuntimeError(f"child failed: {r.stderr[-3000:]}")
        return json.loads(r.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- ingress

BACKEND_CONF = """\
worker_processes 1;
pid {d}/backend.pid;
error_log stderr error;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {d}/b1; proxy_temp_path {d}/b2; fastcgi_temp_path {d}/b3; uwsgi_temp_path {d}/b4;
    scgi_temp_path {d}/b5;
    server {{ listen {ip}:8080; location / {{ return 200 "hello from the backend\\n"; }} }}
}}
"""

LOAD = r"""
import asyncio, sys, time
host, port, vhost, seconds, conns = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4]), int(sys.argv[5])
request = f"GET /bar HTTP/1.1\r\nHost: {vhost}\r\n\r\n".encode()
async def one(end, counts):
    r, w = await asyncio.open_connection(host, port)
    while time.monotonic() < end:
        w.write(request)
        head = await r.readuntil(b"\r\n\r\n")
        lines = [l.lower() for l in head.split(b"\r\n")]
        length = int(next(l.split(b":")[1] for l in lines if l.startswith(b"content-length")))
        await r.readexactly(length)
        counts[0 if head.startswith(b"HTTP/1.1 200") else 1] += 1
        if b"connection: close" in lines:  # nginx closes a keep-alive connection after keepalive_requests
            w.close()
            r, w = await asyncio.open_connection(host, port)
    w.close()
async def main():
    counts = [0, 0]
    t0 = time.monotonic()
    await asyncio.gather(*(one(t0 + seconds, counts) for _ in range(conns)))
    print(counts[0] / (time.monotonic() - t0), counts[1])
asyncio.run(main())
"""


def ingress_bench(seconds: float, workdir: Path) -> dict[str, Any]:
    """Requests/s through `kubelite ingress` and to the same backend directly, from a client namespace."""
    client_ip, node_ip, gw, backend_ip = "10.200.1.2", "10.200.1.1", "10.244.7.1", "10.244.7.2"
    procs = Processes(workdir)
    with Netns("client") as client, Netns("node") as node, Netns("pods") as pods:
        for argv in ((node, "ip", "link", "add", "to-client", "type", "veth", "peer", "name", "eth0", "netns", client),
                     (node, "ip", "link", "add", "to-pods", "type", "veth", "peer", "name", "eth0", "netns", pods),
                     (node, "ip", "addr", "add", f"{node_ip}/24", "dev", "to-client"),
                     (node, "ip", "addr", "add", f"{gw}/24", "dev", "to-pods"),
                     (client, "ip", "addr", "add", f"{client_ip}/24", "dev", "eth0"),
                     (pods, "ip", "addr", "add", f"{backend_ip}/24", "dev", "eth0"),
                     (node, "ip", "link", "set", "to-client", "up"), (node, "ip", "link", "set", "to-pods", "up"),
                     (client, "ip", "link", "set", "eth0", "up"), (pods, "ip", "link", "set", "eth0", "up"),
                     (client, "ip", "route", "add", "default", "via", node_ip),
                     (pods, "ip", "route", "add", "default", "via", gw),
                     (node, "sysctl", "-qw", "net.ipv4.ip_forward=1")):
            in_ns(argv[0], *argv[1:])
        backend_dir = workdir / "backend"
        backend_dir.mkdir()
        (backend_dir / "nginx.conf").write_text(BACKEND_CONF.format(d=backend_dir, ip=backend_ip))
        backend = subprocess.Popen(["nsenter", f"--net=/run/netns/{pods}", "--", "nginx", "-c",
                                    str(backend_dir / "nginx.conf"), "-p", str(backend_dir), "-g", "daemon off;"])
        try:
            procs.start_apiserver(procs.start_etcd())
            asyncio.run(ingress_objects(procs.conn(), backend_ip))
            procs.start("ingress", "ingress", "--server", procs.address, "--node-name", "bench",
                        "--state-dir", str(workdir / "ingress"), "--netns", node, "--log-level", "warning")
            deadline = time.monotonic() + 60
            while True:
                r = subprocess.run(["nsenter", f"--net=/run/netns/{client}", "--", "python3", "-c", LOAD, node_ip,
                                    "80", "foo.example", "0.2", "1"], capture_output=True, text=True, timeout=30)
                if r.returncode == 0 and float(r.stdout.split()[0]) > 0 and r.stdout.split()[1] == "0":
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the ingress does not serve: {r.stdout} {r.stderr[-500:]}")
                time.sleep(0.3)
            out: dict[str, Any] = {"seconds": seconds, "connections": 16}
            for label, target, port in (("direct_rps", backend_ip, "8080"), ("through_ingress_rps", node_ip, "80")):
                r = subprocess.run(["nsenter", f"--net=/run/netns/{client}", "--", sys.executable, "-c", LOAD,
                                    target, port, "foo.example", str(seconds), "16"], capture_output=True, text=True,
                                   timeout=seconds + 60, check=False)
                if r.returncode != 0:
                    raise RuntimeError(f"load to {target}:{port} failed: {r.stderr[-1500:]}")
                rps, errors = r.stdout.split()
                out[label] = round(float(rps))
                out[label.replace("_rps", "_errors")] = int(errors)
            out["ratio"] = round(out["through_ingress_rps"] / out["direct_rps"], 3)
            return out
        finally:
            procs.stop_all()
            backend.terminate()
            backend.wait(10)


async def ingress_objects(conn: ClientConfig, backend_ip: str) -> None:
    async with Client(conn) as c:
        from api import convert
        from api.pb import networking_pb2

        await c.create(core_pb2.Service(metadata={"name": "bar", "namespace": "default"},
                                        spec={"cluster_ip": "None", "ports": [{"name": "http", "port": 80}]}))
        await c.create(discovery_pb2.EndpointSlice(
            metadata={"name": "bar-x", "namespace": "default", "labels": {"kubernetes.io/service-name": "bar"}},
            address_type="IPv4", ports=[{"name": "http", "port": 8080, "protocol": "TCP"}],
            endpoints=[{"addresses": [backend_ip], "conditions": {"ready": True}}]))
        await c.create(convert.from_dict(networking_pb2.IngressClass, {
            "metadata": {"name": "kubelite", "annotations": {"ingressclass.kubernetes.io/is-default-class": "true"}},
            "spec": {"controller": "kubelite.dev/ingress-nginx"}}))
        await c.create(convert.from_dict(networking_pb2.Ingress, {
            "metadata": {"name": "bench", "namespace": "default"}, "spec": {"rules": [{"host": "foo.example", "http": {
                "paths": [{"path": "/bar", "pathType": "Prefix",
                           "backend": {"service": {"name": "bar", "port": {"number": 80}}}}]}}]}}))


# ---------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,5000,10000")
    parser.add_argument("--changes", type=int, default=9)
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--ingress-seconds", type=float, default=8.0)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        logs.configure("bench-proxy", level="warning")  # to stderr; stdout carries the JSON
        print(json.dumps(asyncio.run(apply_and_change(int(args.sizes), args.modes, changes=args.changes))))
        return
    if os.geteuid() != 0:
        sys.exit("bench/proxy.py needs root (network namespaces, iptables, nftables, nginx)")
    sizes = [int(s) for s in args.sizes.split(",")]
    modes = [m for m in args.modes.split(",") if m]
    results = []
    for n in sizes:
        services, slices = objects(n)
        row: dict[str, Any] = {"services": n, "endpoints_per_service": ENDPOINTS}
        for mode in modes:
            render_s, payload, size = render(mode, services, slices)
            got: dict[str, Any] = {"render_s": round(render_s, 3),
                                   "payload_lines" if mode == "iptables" else "payload_messages": size}
            if mode == "iptables":
                wall, cpu = iptables_kernel(payload)
                got.update(kernel_s=round(wall, 3), kernel_cpu_s=round(cpu, 3))
            else:
                got["kernel_s"] = round(nft_kernel(payload), 3)
            got.update(child(n, mode, args.changes if n == max(sizes) else 0))
            row[mode] = got
            print(json.dumps({"services": n, mode: got}), file=sys.stderr, flush=True)
        results.append(row)
    ingress: dict[str, Any] = {}
    if args.ingress_seconds > 0:
        with tempfile.TemporaryDirectory(prefix="kubelite-bench-ingress-") as d:
            ingress = ingress_bench(args.ingress_seconds, Path(d))
        print(json.dumps({"ingress": ingress}), file=sys.stderr, flush=True)
    largest = results[-1]
    nft_change = largest.get("nftables", {}).get("one_endpoint_change_ms", {})
    verdict = {"nftables_one_endpoint_change_ok": nft_change.get("median", float("inf"))
               < TARGETS["nftables_one_endpoint_change_ms_max"]}
    print(json.dumps({"benchmark": "proxy", "targets": TARGETS, "results": results, "ingress": ingress,
                      "verdict": verdict, "kubelite": kubelite()[0]}, indent=2))


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
