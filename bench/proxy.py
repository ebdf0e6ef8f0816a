"""Service proxy: render and apply 1,000 / 5,000 / 10,000 Services x 5 endpoints (JSON to stdout). Needs root.

For each size, in scratch network namespaces (`kltest-bench-*`, deleted at the end):

- render_s: `render_rules(services, endpoints, node)`, the whole payload from the API objects;
- restore_file_s: baseline, the kernel's own cost: `iptables-restore < payload-file` of that same
  payload in a fresh namespace, one transaction (without --noflush, which a fresh namespace
  does not need);
- apply_s: the proxier's full sync (render, iptables-save, batched `iptables-restore --noflush`)
  into a fresh namespace, with its informer caches filled directly (no apiserver);
- render_ratio: render_s / restore_file_s (target: under 0.2 at every size); the same ratio of CPU
  seconds (render_cpu_ratio: process time vs the restore's user+sys) is also given, being far less
  sensitive to other load on the machine.

The apply and change measurements run in a child process started inside the scratch namespace,
as the lab runs each node's proxy. At the largest size also:
- one_endpoint_change_ms: the proxier's partial sync after one Endpoints object changes
  (render that Service, rewrite its KUBE-SVC chain and the changed KUBE-SEP chains), median
  and max of several changes (target: under 100 ms);
- svc_chain_restore_only_ms: `iptables-restore --noflush` of one rewritten KUBE-SVC chain alone:
  the kernel's share of an endpoint change (nf_tables validates every jump path from the built-in
  chains on each commit that adds rules, so this grows with the whole ruleset);
- svc_chain_restore_without_jumps_ms: the same, with the nat jump rules (PREROUTING, OUTPUT,
  POSTROUTING -> KUBE-*) removed for the measurement: what is left when the kernel has no jump
  path to validate;
- new_service_ms: a partial sync that adds a Service, which must rewrite all of KUBE-SERVICES
  (for scale: why an endpoint change must not);
- noflush_one_transaction_s (at 1,000 only): the same payload as ONE --noflush transaction, to
  show why full syncs are batched (iptables-nft's restore is quadratic in chains per transaction).

    .venv/bin/python bench/proxy.py [--sizes 1000,5000,10000] [--changes 7]
"""

from __future__ import annotations

import argparse
import asyncio
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
from api.pb import core_pb2  # noqa: E402
from client.api import Client  # noqa: E402
from client.config import ClientConfig  # noqa: E402
from proxy.proxier import Proxier, ProxierConfig, check_namespace  # noqa: E402
from proxy.rules import JUMPS, Node, render_rules  # noqa: E402

TARGETS = {"render_ratio_max": 0.2, "one_endpoint_change_ms_max": 100.0}
ENDPOINTS = 5


def objects(n: int) -> tuple[list[core_pb2.Service], list[core_pb2.Endpoints]]:
    services, endpoints = [], []
    for i in range(n):
        name = f"svc-{i}"
        services.append(core_pb2.Service(
            metadata={"namespace": "bench", "name": name},
            spec={"cluster_ip": f"10.96.{i // 250}.{i % 250 + 1}",
                  "ports": [{"name": "http", "port": 80, "protocol": "TCP", "target_port": "8080"}]}))
        endpoints.append(endpoints_for(name, [i * ENDPOINTS + j for j in range(ENDPOINTS)]))
    return services, endpoints


def endpoints_for(name: str, numbers: list[int]) -> core_pb2.Endpoints:
    ips = [f"10.{244 + k // 62500}.{k // 250 % 250}.{k % 250 + 1}" for k in numbers]
    return core_pb2.Endpoints(metadata={"namespace": "bench", "name": name}, subsets=[{
        "addresses": [{"ip": ip} for ip in ips], "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}])


class Netns:
    def __init__(self) -> None:
        self.name = f"kltest-bench-{secrets.token_hex(3)}"

    def __enter__(self) -> str:
        subprocess.run(["ip", "netns", "add", self.name], check=True, timeout=10)
        return self.name

    def __exit__(self, *exc: object) -> None:
        subprocess.run(["ip", "netns", "del", self.name], check=False, timeout=30)


def restore_file(payload: str, *, noflush: bool) -> tuple[float, float]:
    """(wall seconds, CPU seconds user+sys) of `iptables-restore < file` in a fresh namespace."""
    with tempfile.NamedTemporaryFile("w", suffix=".rules") as f, Netns() as ns:
        f.write(payload)
        f.flush()
        argv = ["nsenter", f"--net=/run/netns/{ns}", "--", "iptables-restore", "-w"]
        if noflush:
            argv.append("--noflush")
        with open(f.name) as stdin:
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0 = time.perf_counter()
            subprocess.run(argv, stdin=stdin, check=True, timeout=3600)
            wall = time.perf_counter() - t0
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


async def apply_and_change(n: int, *, changes: int) -> dict[str, Any]:
    """In the child, inside the scratch namespace (where the lab runs its proxies): full sync, then changes."""
    services, endpoints = objects(n)
    for obj in (*services, *endpoints):
        obj.metadata.resource_version = "1"
    out: dict[str, Any] = {}
    config = ProxierConfig(node_name="bench", min_sync_period=0.0)
    check_namespace(config)
    # Never called: the informer caches are filled directly.
    client = Client(ClientConfig(server="127.0.0.1:1", insecure_plaintext=True))
    try:
        proxier = Proxier(client, config)
        proxier.services.store = {f"bench/{s.metadata.name}": s for s in services}
        proxier.endpoints.store = {f"bench/{e.metadata.name}": e for e in endpoints}
        t0 = time.perf_counter()
        await proxier.sync()
        out["apply_s"] = round(time.perf_counter() - t0, 3)
        assert proxier.full_syncs == 1, "full sync failed"
        out["rules"] = {t: int(proxier.metrics.rules.labels(t)._value.get()) for t in ("nat", "filter")}
        if changes:
            timings = []
            for c in range(changes):
                i = (c * 7919) % n
                key = f"bench/svc-{i}"
                # One endpoint of Service i replaced by a new address.
                numbers = [i * ENDPOINTS + j for j in range(ENDPOINTS - 1)] + [n * ENDPOINTS + c]
                changed = endpoints_for(f"svc-{i}", numbers)
                changed.metadata.resource_version = str(2 + c)
                proxier.endpoints.store[key] = changed
                proxier._dirty.add(key)  # what the Endpoints informer's handler does
                t0 = time.perf_counter()
                await proxier.sync()
                timings.append((time.perf_counter() - t0) * 1000)
                assert proxier.last_changes is not None and proxier.partial_syncs == c + 1
                assert not any(w.endswith("/KUBE-SERVICES") for w in proxier.last_changes.written)
            out["one_endpoint_change_ms"] = {"median": round(statistics.median(timings), 1),
                                             "min": round(min(timings), 1), "max": round(max(timings), 1),
                                             "runs": changes}
            new = core_pb2.Service(metadata={"namespace": "bench", "name": "new", "resource_version": "1"},
                                   spec={"cluster_ip": "10.96.250.1", "ports": [{"name": "http", "port": 80}]})
            new_ep = endpoints_for("new", [n * ENDPOINTS + changes])
            new_ep.metadata.resource_version = "1"
            proxier.services.store["bench/new"] = new
            proxier.endpoints.store["bench/new"] = new_ep
            proxier._dirty.add("bench/new")
            t0 = time.perf_counter()
            await proxier.sync()
            out["new_service_ms"] = round((time.perf_counter() - t0) * 1000, 1)
            assert proxier.last_changes is not None and "nat/KUBE-SERVICES" in proxier.last_changes.written
            # The iptables-restore share of an endpoint change: one KUBE-SVC chain rewritten, alone.
            owned = proxier.state["bench/svc-0"].owned
            svc_chain = next(c for c in owned if c.startswith("KUBE-SVC-"))
            lines = "\n".join(owned[svc_chain])
            again = f"*nat\n:{svc_chain} - [0:0]\n{lines}\nCOMMIT\n"
            kernel = []
            for _ in range(changes):
                t0 = time.perf_counter()
                await proxier.iptables.restore(again)
                kernel.append((time.perf_counter() - t0) * 1000)
            out["svc_chain_restore_only_ms"] = {"median": round(statistics.median(kernel), 1),
                                                "min": round(min(kernel), 1)}
            # The same restore with the nat jump rules taken out: nothing for the kernel to validate.
            jumps = [j for j in JUMPS if j.table == "nat"]
            for j in jumps:
                await proxier.iptables.run(["iptables", "-w", "-t", "nat", "-D", j.chain, *j.spec])
            bare = []
            for _ in range(changes):
                t0 = time.perf_counter()
                await proxier.iptables.restore(again)
                bare.append((time.perf_counter() - t0) * 1000)
            out["svc_chain_restore_without_jumps_ms"] = {"median": round(statistics.median(bare), 1),
                                                         "min": round(min(bare), 1)}
    finally:
        await client.close()
    return out


def child(n: int, changes: int) -> dict[str, Any]:
    """Run apply_and_change in a fresh scratch namespace, in a child process started inside it."""
    with Netns() as ns:
        r = subprocess.run(["nsenter", f"--net=/run/netns/{ns}", "--", sys.executable, __file__, "--child",
                            "--sizes", str(n), "--changes", str(changes)],
                           capture_output=True, text=True, timeout=3600, check=False)
        if r.returncode != 0:
            raise RuntimeError(f"child failed: {r.stderr[-2000:]}")
        return json.loads(r.stdout.strip().splitlines()[-1])


def render_time(services: list[core_pb2.Service],
                endpoints: list[core_pb2.Endpoints]) -> tuple[float, float, str]:
    """Best of three: (wall seconds, CPU seconds, payload)."""
    best, best_cpu, payload = float("inf"), float("inf"), ""
    for _ in range(3):
        t0, c0 = time.perf_counter(), time.process_time()
        payload = render_rules(services, endpoints, Node("bench"))
        best, best_cpu = min(best, time.perf_counter() - t0), min(best_cpu, time.process_time() - c0)
    return best, best_cpu, payload


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,5000,10000")
    parser.add_argument("--changes", type=int, default=7)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        logs.configure("bench-proxy", level="warning")  # to stderr; stdout carries the JSON
        print(json.dumps(asyncio.run(apply_and_change(int(args.sizes), changes=args.changes))))
        return
    if os.geteuid() != 0:
        sys.exit("bench/proxy.py needs root (network namespaces, iptables)")
    sizes = [int(s) for s in args.sizes.split(",")]
    results = []
    for n in sizes:
        services, endpoints = objects(n)
        render_s, render_cpu, payload = render_time(services, endpoints)
        restore_s, restore_cpu = restore_file(payload, noflush=False)
        row: dict[str, Any] = {
            "services": n, "endpoints_per_service": ENDPOINTS, "payload_lines": payload.count("\n"),
            "render_s": round(render_s, 3), "restore_file_s": round(restore_s, 3),
            "render_ratio": round(render_s / restore_s, 3),
            "render_cpu_s": round(render_cpu, 3), "restore_file_cpu_s": round(restore_cpu, 3),
            "render_cpu_ratio": round(render_cpu / restore_cpu, 3),
        }
        if n == min(sizes) and n <= 1000:
            row["noflush_one_transaction_s"] = round(restore_file(payload, noflush=True)[0], 3)
        row.update(child(n, args.changes if n == max(sizes) else 0))
        results.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    largest = results[-1]
    verdict = {
        "render_ratio_ok": all(r["render_ratio"] < TARGETS["render_ratio_max"] for r in results),
        "render_cpu_ratio_ok": all(r["render_cpu_ratio"] < TARGETS["render_ratio_max"] for r in results),
        "one_endpoint_change_ok": largest.get("one_endpoint_change_ms", {}).get("max", float("inf"))
        < TARGETS["one_endpoint_change_ms_max"],
    }
    print(json.dumps({"benchmark": "proxy", "targets": TARGETS, "results": results, "verdict": verdict}, indent=2))


if __name__ == "__main__":
    main()
