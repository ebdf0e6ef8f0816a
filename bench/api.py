"""apiserver throughput, latency and watch fan-out against a raw etcd baseline (JSON to stdout).

Starts its own etcd (temp dir, free port) and `kubelite apiserver` as separate
processes, then measures in one run:

- etcd baseline: raw puts/s (and create transactions/s, the apiserver's own
  write) from 64 concurrent asyncio clients using aetcd, with values the size
  of a stored pod, from load-generator processes separate from etcd;
- apiserver pod creates/s from 64 concurrent clients (spread over
  --load-procs processes: one Python process cannot saturate the server and
  generate load at once), and its ratio to the etcd put baseline;
- where a create's CPU goes: with --profile, the apiserver's CPU per create split by part (decode, validation
  and defaults, admission and authorization, authentication, audit, watch cache, storage, registry, and gRPC
  with the event loop), and the `floor` phase: the same load against a grpc.aio echo server with the same
  TLS, the CPU any unary call costs the server before a handler does anything. Here (one run): 675 us per
  create, of which 399 us in gRPC and the event loop against an echo floor of 172 us; validation 66,
  storage 77, admission 56, registry 31, authentication 19, watch cache 15, decode 9. The 300 us target
  cannot be met by trimming the handlers while gRPC alone costs this much per call: batched calls
  (CreateMany, BindMany) are what take the per-call cost out. A synchronous grpcio server with a thread pool
  was no way out: an echo on each, plaintext, 2 x 32 callers, 239 us per call on grpc.aio with uvloop
  against 209 on the thread pool;
- `client_creates`: the same creates through the typed client's `create`, as components call it. Creates made
  at once on one client go together (client/coalesce.py): the first alone, the others while it is in flight
  in one CreateMany when it returns. One run: 3,184 creates/s (0.62 of raw create transactions) and 275 us of
  apiserver CPU per create (gRPC 100 of it, storage 50, validation 52, admission 27), against 1,445/s and
  682 us for the unary `creates` in the same run; another: 3,142/s (0.58) and 285 us against 1,518/s and
  696 us. Two calls in flight rather than one: 2,865/s and 324 us;
- etcd's side of a create, from its /metrics (raft rounds, transactions, watch messages per item). etcd's
  CPU follows its raft rounds (about 1.3 ms of CPU each on this machine), not the writes they carry. Raw
  create transactions from 64 clients share a round about seven at a time (0.14 rounds each). Through the
  apiserver, a create cost etcd 626-750 us against 160-190 for a raw one, for two reasons: the group
  committer sent each batch as soon as anything was queued, up to 4 at once, so a batch held about two
  writes and etcd did 0.41 rounds per create; and the bench deleted the baselines' 40,000 keys from the
  same etcd just before, which left it slower (a fresh etcd: 200 us per create against 340). Now a batch
  waits while another is in flight (apiserver/storage/groupcommit.py) and the apiserver gets a fresh etcd:
  0.14-0.26 rounds and 184-208 us of etcd CPU per create, creates/s 1,088 -> 1,413-1,502. What is left
  over the raw transaction is the apiserver's watch (one watch message per round; a watch costs etcd about
  15 us per event, measured with raw transactions and one watcher);
- create latency p50/p99 at a paced 200 creates/s (unchanged by the batching above: p50 2.26 ms, p99 3.8 ms);
- watch fan-out: 1,000 watchers in --watch-procs client processes, p50/p99
  delay from write to delivery at 100 writes/s (plus, for context, the same
  at 100 watchers x 100 writes/s and 1,000 watchers x 10 writes/s). Each watch message costs the
  server about 30 us whatever it carries, so the apiserver paces its watchers (apiserver/cache.py
  watch_pause): one that sent moments ago waits up to watchers/10,000 s (2-100 ms) and its next message
  carries everything since. Sending each event as it came (one message per event per watcher), the
  1,000 x 100 point collapsed: p99 30 s, 80 of 1,000 writes timed out, 32.5 us of apiserver CPU per
  delivered event. Paced: no write errors, p99 124-275 ms, 7.5-7.9 us per delivery (four runs). Watchers
  are grouped by filter, so a change is matched once per distinct filter (0.53 -> 0.16 us per delivery
  in the cache alone). After the creates phases the p99 is not steady: `--only creates,fanout` three times
  gave 6,831, 1,842 and 374 ms (and 2,219 ms in a full run), apiserver CPU per delivery 13.9, 9.6 and
  8.3 us, never a write error; `--only fanout` 288 ms. The apiserver's garbage collection took 0.2 s of
  such a run, so that is not it, and etcd logged no snapshot or slow request. The phase also reports the
  writes' own latency (request to answer, under the same watchers), and that is most of the delay: in
  three more `--only creates,fanout` runs delivery p50/p99 was 901/2,714, 1,253/1,504 and 274/721 ms,
  and in the last of them the writes alone took p50 233, p99 658 ms; `--only fanout`: delivery 342/814,
  writes 311/762 ms. The apiserver used 0.6-0.8 of a CPU, each watcher process about 0.4: not
  saturated, but its one event loop serves 10,000 watch messages a second, and each Create waits
  behind them at every step. A watcher then waited its pace once woken by an event (two wake-ups
  per message); it now waits right after each message (one): `--only creates,fanout`, two
  alternating rounds, delivery p99 8,308 and 11,020 -> 236 and 268 ms, writes p99 8,272 and 10,981
  -> 121 and 188 ms, 14.8-17.1 -> 7.7-8.0 us of apiserver CPU per delivery; `--only fanout` delivery
  p99 260 and 497 -> 202 and 245 ms;
- `kubelite apply -f` of a 10,000-pod file, wall time, against the same command sent one Create per object
  (the baseline: see apply_file). apply sends its creates in unary CreateMany calls of up to 250 objects,
  4 in flight, rather than in one client stream: once hundreds of objects share a call, the call's own
  cost is gone in either (what is left is each object's admission, validation and watch-cache work), and a
  unary call keeps each chunk's answers and errors (a refusal of the whole call) with the chunk that can
  act on them. A stream was not measured; of the chunkings measured here (on a shared 2-CPU machine),
  250 x 4 took 5.7-6.3 s, 500 x 2 6.4 s and 100 x 8 7.7 s. Before the first call, apply loads and checks a
  file of 1,000 documents or more in one process per CPU (cli/apply.py load_and_parse: 2.2 s -> 1.35 s here),
  and the apiserver checks each template's spec once (api/memo.py: 245 -> 199 us of CPU per pod): 4.97 s
  -> 3.6 s on this machine. Later runs of the whole bench gave 4.5 s: the file's syntax check (0.41 s) still
  ran in one process, and the spec's control-character walk and defaults were done for every pod. Each process
  now checks its own run (cut at the "---" lines, no parse needed), and both are memoized by the spec's
  encoding, on both sides: `--only apply`, three alternating rounds, 4.06-4.39 -> 3.46-3.65 s, 214-230 ->
  189-199 us of apiserver CPU per pod. Of the 3.5 s, about 0.3 s is the CLI's start, 1.1 s the parse (both
  CPUs) and 1.9 s the sending, where the one apiserver process is the bottleneck;
- the REST face of the same process: JSON pod creates/s (POST, the same load) and watch delivery p50/p99 of
  --rest-watchers streaming watches (`?watch=1`) at the same write rate, next to the gRPC figures;
- the cost of TLS: creates/s and CPU per create (apiserver, etcd, client
  processes) of a cluster with mutual TLS on every link against the same
  cluster without TLS (the test-only plaintext switch), fresh clusters
  alternating, in the same run; TLS may cost at most 15% of creates/s;
- the cost of authorization: creates/s of a user allowed by RBAC (every create
  audited) against `--authorization-mode AlwaysAllow`, fresh clusters
  alternating; authorization may cost at most 10% of creates/s.

Every other phase runs with mutual TLS, as a cluster does.

Every phase also reports the CPU seconds etcd and the apiserver used during it
and the apiserver's CPU per item (create or delivered watch event): on a
2-CPU machine shared with the load generators that is the figure to compare.

    .venv/bin/python bench/api.py                 # everything
    .venv/bin/python bench/api.py --profile DIR   # also py-spy the apiserver per phase (flamegraph SVGs)
    .venv/bin/python bench/api.py --only tls      # only the TLS against plaintext comparison
    .venv/bin/python bench/api.py --only authz    # only authorization on against off
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from apiserver.storage.etcd import EtcdTLS  # noqa: E402
from bench.harness import BIN, GiB, Processes, cpu_seconds, percentile  # noqa: E402
from client.config import ClientConfig  # noqa: E402
from deploy.node import certs  # noqa: E402

TARGETS = {"create_ratio_min": 0.30, "create_p99_ms_max": 50.0, "fanout_p99_ms_max": 500.0, "apply_seconds_max": 4.0,
           "tls_create_cost_max": 0.15, "authz_create_cost_max": 0.10,
           # the two create figures, met by the typed client's creates (client_creates)
           "create_txn_ratio_min": 0.35, "create_cpu_us_max": 300.0}


def pod_manifest(name: str, namespace: str = "default", annotations: dict[str, str] | None = None) -> dict[str, Any]:
    """The documentation's nginx pod with a unique name."""
    meta: dict[str, Any] = {"name": name, "namespace": namespace, "labels": {"app": "nginx", "bench": "api"}}
    if annotations:
        meta["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
            "spec": {"containers": [{"name": "nginx", "image": "nginx:1.14.2", "ports": [{"containerPort": 80}]}]}}


def stored_pod_bytes() -> bytes:
    """What the apiserver stores for one such pod (defaults, uid, timestamps): the etcd baseline's value."""
    import uuid

    from api import convert, defaults, kinds

    pod = kinds.unwrap(convert.manifest_to_object(pod_manifest("bench-pod-000000")))
    pod.metadata.uid = str(uuid.uuid4())
    pod.metadata.creation_timestamp.GetCurrentTime()
    pod.metadata.generation = 1
    defaults.apply(pod)
    return pod.SerializeToString()


# ---------------------------------------------------------------- etcd's own counters

# What etcd did, from its /metrics: its CPU goes mostly to raft rounds (each a WAL fsync), not to the
# writes a round carries, so rounds per write explain its CPU per write.
ETCD_COUNTERS = {
    "raft_rounds": "etcd_disk_wal_fsync_duration_seconds_count",
    "txns": 'grpc_server_handled_total{grpc_code="OK",grpc_method="Txn",grpc_service="etcdserverpb.KV",'
            'grpc_type="unary"}',
    "watch_messages": 'grpc_server_msg_sent_total{grpc_method="Watch",grpc_service="etcdserverpb.Watch",'
                      'grpc_type="bidi_stream"}',
    "puts": "etcd_mvcc_put_total",
    "ranges": "etcd_mvcc_range_total",
}


def etcd_counters(cluster: Processes) -> dict[str, float]:
    """ETCD_COUNTERS as etcd reports them now (over its client port, with the apiserver's client cert)."""
    import ssl
    import urllib.request

    tls = cluster.etcd_tls()
    ctx = None
    if tls is not None:
        ctx = ssl.create_default_context(cafile=tls.ca_file)
        ctx.load_cert_chain(tls.cert_file, tls.key_file)
        ctx.check_hostname = False  # etcd's certificate names the lab host, the bench dials 127.0.0.1
    with urllib.request.urlopen(f"{cluster.etcd_url}/metrics", context=ctx, timeout=10) as resp:
        lines = resp.read().decode().splitlines()
    values = dict(line.rsplit(" ", 1) for line in lines if line and not line.startswith("#"))
    return {name: float(values.get(metric, 0.0)) for name, metric in ETCD_COUNTERS.items()}


def etcd_per_item(before: dict[str, float], after: dict[str, float], items: int) -> dict[str, float]:
    return {name: round((after[name] - before[name]) / items, 3) for name in ETCD_COUNTERS}


# ---------------------------------------------------------------- processes


def _channel(conn: ClientConfig, options: list[tuple[str, Any]] | None = None) -> Any:
    """A raw gRPC channel as `conn` says: mutual TLS, or plaintext for the baseline."""
    import grpc

    from client.channel import OPTIONS
    from client.tls import ClientCredentials

    opts = options or OPTIONS
    if conn.insecure_plaintext:
        return grpc.aio.insecure_channel(conn.server, options=opts)
    return grpc.aio.secure_channel(conn.server, ClientCredentials(conn).channel_credentials(), options=opts)


async def _wait_healthy(conn: ClientConfig, timeout: float = 30) -> None:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    deadline = time.monotonic() + timeout
    async with _channel(conn) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            with contextlib.suppress(grpc.aio.AioRpcError):
                resp = await stub.Check(health_pb2.HealthCheckRequest(service="kubelite.v1.Api"), timeout=1)
                if resp.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            await asyncio.sleep(0.1)
    raise RuntimeError("apiserver never became healthy")


class Profiler:
    """py-spy on the apiserver for the duration of a phase (when --profile is given)."""

    def __init__(self, directory: str, pid: int, name: str, *, native: bool = False) -> None:
        self.proc: subprocess.Popen | None = None
        exe = shutil.which("py-spy", path=str(BIN)) or shutil.which("py-spy")
        if directory and exe:
            Path(directory).mkdir(parents=True, exist_ok=True)
            extra = ["--native"] if native else ["--nonblocking"]
            self.proc = subprocess.Popen([exe, "record", "--pid", str(pid), "--rate", "200", *extra,
                                          "--format", "raw", "--output", f"{directory}/{name}.txt"],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(0.5)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(30)

    def breakdown(self, cpu_us_per_item: float) -> dict[str, float]:
        """The apiserver's CPU per item split by what it was doing (BREAKDOWN), from the samples."""
        if self.proc is None:
            return {}
        return cpu_breakdown(Path(self.proc.args[-1]).read_text(), cpu_us_per_item)


# Where a sample's time goes: the innermost frame that names one of these files or functions. What names
# none is gRPC's and the event loop's own work (the calls, their TLS, task switches) and stays "grpc".
BREAKDOWN = (
    ("decode_encode", ("_parse (apiserver/server.py", "api/convert.py", "apiserver/wire.py", "google/protobuf")),
    ("validate_default", ("api/validation.py", "api/defaults.py", "apiserver/rules/", "api/memo.py",
                          "api/names.py", "api/text.py", "api/labels.py", "api/quantity.py")),
    ("admission_authz", ("apiserver/admission.py", "apiserver/podsecurity.py", "apiserver/authz/",
                         "apiserver/serviceaccounts.py", "apiserver/overload.py")),
    ("authn", ("apiserver/authn.py",)),
    ("audit_metrics", ("apiserver/audit.py", "prometheus_client", "structlog")),
    ("watch_cache", ("apiserver/cache.py",)),
    ("storage_etcd", ("apiserver/storage/", "aetcd/")),
    ("registry", ("apiserver/registry.py",)),
)


def cpu_breakdown(raw: str, cpu_us_per_item: float) -> dict[str, float]:
    """Split `cpu_us_per_item` by BREAKDOWN over a py-spy raw profile (lines of `frame;frame;... count`)."""
    counts = dict.fromkeys([name for name, _ in BREAKDOWN] + ["grpc"], 0)
    for line in raw.splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        category = "grpc"
        for frame in reversed(stack.split(";")):
            category = next((name for name, marks in BREAKDOWN if any(m in frame for m in marks)), "")
            if category:
                break
        counts[category or "grpc"] += int(n)
    total = sum(counts.values()) or 1
    return {name: round(cpu_us_per_item * n / total, 1) for name, n in counts.items()}


# ---------------------------------------------------------------- load generator processes


def _run_in_procs(fn: Callable[..., Any], args_per_proc: list[tuple[Any, ...]]) -> list[Any]:
    """Run `fn(*args)` in one fresh process per args tuple; return their results in order."""
    ctx = mp.get_context("spawn")
    with ctx.Pool(len(args_per_proc)) as pool:
        return pool.starmap(fn, args_per_proc)


def _start_at(delay: float = 1.5) -> float:
    return time.time() + delay


async def _sleep_until(when: float) -> None:
    await asyncio.sleep(max(0.0, when - time.time()))


def etcd_worker(etcd_url: str, tls_files: EtcdTLS | None, mode: str, offset: int, count: int, concurrency: int,
                value: bytes, start_at: float) -> tuple[int, float, float]:
    """One load process against etcd: `count` puts or create-transactions by `concurrency` tasks."""

    async def main() -> tuple[int, float, float]:
        from aetcd import rpc

        from apiserver.storage.etcd import EtcdConnection, parse_endpoints

        ((host, port),) = parse_endpoints(etcd_url)
        client = EtcdConnection(host, port, tls_files)
        try:
            kv = client.kvstub
            await kv.Range(rpc.RangeRequest(key=b"/", limit=1), timeout=5)
            next_i = offset
            end = offset + count

            async def task() -> None:
                nonlocal next_i
                while next_i < end:
                    i = next_i
                    next_i += 1
                    key = f"/bench/{mode}/{i:08d}".encode()
                    if mode == "put":
                        await kv.Put(rpc.PutRequest(key=key, value=value), timeout=30)
                    else:
                        await kv.Txn(rpc.TxnRequest(
                            compare=[rpc.Compare(key=key, result=rpc.Compare.EQUAL, target=rpc.Compare.CREATE,
                                                 create_revision=0)],
                            success=[rpc.RequestOp(request_put=rpc.PutRequest(key=key, value=value))],
                            failure=[rpc.RequestOp(request_range=rpc.RangeRequest(key=key))]), timeout=30)

            await _sleep_until(start_at)
            t0 = time.time()
            await asyncio.gather(*(task() for _ in range(concurrency)))
            return count, t0, time.time()
        finally:
            await client.close()

    return _fast_run(main())


def create_worker(conn: ClientConfig, prefix: str, count: int, concurrency: int, start_at: float,
                  typed: bool = False) -> tuple[int, float, float, int, float]:
    """One load process against the apiserver: `count` pod creates by `concurrency` tasks on one channel; also the
    CPU seconds this process spent on them. Each create a unary Create of bytes made beforehand, or with `typed`
    the typed client's `create` as a component calls it, whose creates made at once go together in CreateMany
    calls (client/coalesce.py)."""

    async def main() -> tuple[int, float, float, int, float]:
        from api import convert, kinds
        from api.pb import api_pb2
        from client.api import Client

        objects = [convert.manifest_to_object(pod_manifest(f"{prefix}-{i:06d}")) for i in range(count)]
        errors = 0
        async with Client(conn) as client:
            call = client.channel.unary_unary("/kubelite.v1.Api/Create", request_serializer=None,
                                              response_deserializer=None)
            if typed:
                items = [kinds.unwrap(o) for o in objects]
                send = client.create
            else:
                items = [api_pb2.CreateRequest(object=o).SerializeToString() for o in objects]

                def send(raw: Any) -> Any:
                    return call(raw, timeout=60)

            await client.list("pods", "default", limit=1)  # warms the channel up (allowed to the bench user)
            it = iter(items)

            async def task() -> None:
                nonlocal errors
                for item in it:
                    try:
                        await send(item)
                    except Exception:  # counted: the benchmark reports errors rather than stopping
                        errors += 1

            await _sleep_until(start_at)
            t0, cpu0 = time.time(), time.process_time()
            await asyncio.gather(*(task() for _ in range(concurrency)))
            return count, t0, time.time(), errors, time.process_time() - cpu0

    return _fast_run(main())


def delete_worker(conn: ClientConfig, names: list[str], concurrency: int) -> int:
    """Delete the pods `names` from the default namespace; how many went."""

    async def main() -> int:
        from client.api import Client

        it = iter(names)
        deleted = 0
        async with Client(conn) as client:

            async def task() -> None:
                nonlocal deleted
                for name in it:
                    await client.delete("pods", name, "default", grace_period_seconds=0)
                    deleted += 1

            await asyncio.gather(*(task() for _ in range(concurrency)))
        return deleted

    return _fast_run(main())


def echo_server(address: str, cert_files: tuple[str, str, str] | None) -> None:
    """A grpc.aio server that answers every call with its request: what a unary call costs the server before
    the apiserver does anything (mutual TLS with the apiserver's certificate, or plaintext)."""
    import grpc

    from client.channel import OPTIONS
    from client.tls import ServerCredentials

    async def echo(request: bytes, context: Any) -> bytes:
        return request

    async def main() -> None:
        server = grpc.aio.server(options=OPTIONS)
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
            "bench.Echo", {"Call": grpc.unary_unary_rpc_method_handler(echo)}),))
        if cert_files is None:
            server.add_insecure_port(address)
        else:
            cert, key, ca = cert_files
            server.add_secure_port(address, ServerCredentials(cert, key, client_ca_file=ca).grpc_credentials())
        await server.start()
        await server.wait_for_termination()

    asyncio.run(main())


def echo_worker(conn: ClientConfig, count: int, concurrency: int, start_at: float) -> tuple[int, float, float]:
    """One load process against the echo server: `count` calls, each carrying one pod's CreateRequest."""

    async def main() -> tuple[int, float, float]:
        from api import convert
        from api.pb import api_pb2

        raw = api_pb2.CreateRequest(object=convert.manifest_to_object(pod_manifest("echo-000000"))).SerializeToString()
        left = count
        async with _channel(conn) as channel:
            call = channel.unary_unary("/bench.Echo/Call", request_serializer=None, response_deserializer=None)
            await call(raw, timeout=30)

            async def task() -> None:
                nonlocal left
                while left > 0:
                    left -= 1
                    await call(raw, timeout=60)

            await _sleep_until(start_at)
            t0 = time.time()
            await asyncio.gather(*(task() for _ in range(concurrency)))
            return count, t0, time.time()

    return _fast_run(main())


def _rest_session(conn: ClientConfig) -> Any:
    """An aiohttp session presenting `conn`'s client certificate to the REST API."""
    import ssl

    import aiohttp

    context = None
    if not conn.insecure_plaintext:
        context = ssl.create_default_context(cafile=conn.ca_file)
        context.load_cert_chain(conn.cert_file, conn.key_file)
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context if context else False, limit=0))


def rest_create_worker(conn: ClientConfig, url: str, prefix: str, count: int, concurrency: int, start_at: float
                       ) -> tuple[int, float, float, int, float]:
    """As create_worker, over the REST API: `count` JSON pod creates (POST) by `concurrency` tasks."""

    async def main() -> tuple[int, float, float, int, float]:
        bodies = [json.dumps(pod_manifest(f"{prefix}-{i:06d}")).encode() for i in range(count)]
        errors = 0
        headers = {"Content-Type": "application/json"}
        path = f"{url}/api/v1/namespaces/default/pods"
        async with _rest_session(conn) as session:
            async with session.get(f"{url}/api/v1/namespaces?limit=1") as resp:
                await resp.read()
            it = iter(bodies)

            async def task() -> None:
                nonlocal errors
                for body in it:
                    try:
                        async with session.post(path, data=body, headers=headers) as resp:
                            await resp.read()
                            errors += resp.status != 201
                    except Exception:  # counted: the benchmark reports errors rather than stopping
                        errors += 1

            await _sleep_until(start_at)
            t0, cpu0 = time.time(), time.process_time()
            await asyncio.gather(*(task() for _ in range(concurrency)))
            return count, t0, time.time(), errors, time.process_time() - cpu0

    return _fast_run(main())


def rest_watch_worker(conn: ClientConfig, url: str, namespace: str, watchers: int, rv: str, ready_path: str,
                      timeout: float) -> dict[str, Any]:
    """As watch_worker, over the REST API: `watchers` streaming watches (?watch=1), newline-delimited JSON."""

    async def main() -> dict[str, Any]:
        import re

        sent_re = re.compile(rb'"bench/sent":"([0-9.]+)"')
        delays: list[float] = []
        received = [0] * watchers
        primed = 0
        all_primed = asyncio.Event()
        path = f"{url}/api/v1/namespaces/{namespace}/pods?watch=1&resourceVersion={rv}&timeoutSeconds={int(timeout)}"

        async def watch(session: Any, i: int) -> None:
            nonlocal primed
            async with session.get(path) as resp:
                async for line in resp.content:
                    now = time.time()
                    stamps = sent_re.findall(line)
                    delays.extend(now - float(t) for t in stamps)
                    received[i] += len(stamps)
                    if b'"name":"prime"' in line:
                        primed += 1
                        if primed == watchers:
                            all_primed.set()
                    if b'"name":"done"' in line:
                        return

        async with _rest_session(conn) as session:
            tasks = [asyncio.ensure_future(watch(session, i)) for i in range(watchers)]
            async with asyncio.timeout(120):
                await all_primed.wait()
            await asyncio.to_thread(Path(ready_path).touch)
            _, pending = await asyncio.wait(tasks, timeout=timeout)
            for t in pending:
                t.cancel()
        return {"delays": delays, "received": received}

    return _fast_run(main())


def paced_worker(conn: ClientConfig, rate: float, seconds: float) -> dict[str, Any]:
    """Open-loop creates at `rate`/s for `seconds`; the latency of each."""

    async def main() -> dict[str, Any]:
        from api import convert
        from api.pb import api_pb2
        from client.api import Client

        n = int(rate * seconds)
        envelopes = [api_pb2.CreateRequest(object=convert.manifest_to_object(pod_manifest(f"paced-{i:06d}")))
                     .SerializeToString() for i in range(n)]
        latencies: list[float] = []
        errors = 0
        async with Client(conn) as client:
            call = client.channel.unary_unary("/kubelite.v1.Api/Create", request_serializer=None,
                                              response_deserializer=None)
            await client.list("pods", "default", limit=1)  # warms the channel up (allowed to the bench user)

            async def one(raw: bytes) -> None:
                nonlocal errors
                t = time.perf_counter()
                try:
                    await call(raw, timeout=30)
                except Exception:  # counted
                    errors += 1
                    return
                latencies.append(time.perf_counter() - t)

            start = time.perf_counter()
            tasks = []
            for i, raw in enumerate(envelopes):
                await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
                tasks.append(asyncio.ensure_future(one(raw)))
            achieved = n / (time.perf_counter() - start)
            await asyncio.gather(*tasks)
        return {"latencies": latencies, "errors": errors, "achieved_rate": achieved}

    return _fast_run(main())


def watch_worker(conn: ClientConfig, namespace: str, watchers: int, channels: int, rv: str, ready_path: str,
                 timeout: float) -> dict[str, Any]:
    """`watchers` watches (over `channels` connections); each records write-to-delivery delay of every event.

    A watch is known to be live once it has delivered the `prime` pod the driver creates first; the
    process touches `ready_path` when all of its watches are. Each watch ends at the `done` pod.
    """

    async def main() -> dict[str, Any]:
        import re

        from api.pb import api_pb2

        # The watchers only need each event's send time: they find it in the raw bytes instead of decoding
        # every pod, so the client processes (sharing the 2 CPUs with the servers) cost as little as possible.
        sent_re = re.compile(rb"bench/sent\x12.([0-9.]+)", re.S)
        prime, done = b"\x0a\x05prime", b"\x0a\x04done"
        req = api_pb2.WatchRequest(resource="pods", namespace=namespace, resource_version=rv).SerializeToString()
        chans = [_channel(conn) for _ in range(channels)]
        delays: list[float] = []
        received = [0] * watchers
        primed = 0
        all_primed = asyncio.Event()

        async def watch(i: int) -> None:
            nonlocal primed
            call = chans[i % channels].unary_stream("/kubelite.v1.Api/Watch", request_serializer=None,
                                                    response_deserializer=None)(req)
            async for raw in call:
                now = time.time()
                stamps = sent_re.findall(raw)
                delays.extend(now - float(t) for t in stamps)
                received[i] += len(stamps)
                if prime in raw:
                    primed += 1
                    if primed == watchers:
                        all_primed.set()
                if done in raw:
                    call.cancel()
                    return

        tasks = [asyncio.ensure_future(watch(i)) for i in range(watchers)]
        async with asyncio.timeout(120):
            await all_primed.wait()
        await asyncio.to_thread(Path(ready_path).touch)
        _, pending = await asyncio.wait(tasks, timeout=timeout)
        for t in pending:
            t.cancel()
        for c in chans:
            await c.close()
        return {"delays": delays, "received": received}

    return _fast_run(main())


def _fast_run(coro: Any) -> Any:
    try:
        import uvloop

        return uvloop.run(coro)
    except ImportError:
        return asyncio.run(coro)


# ---------------------------------------------------------------- phases


def etcd_baseline(cluster: Processes, *, mode: str, total: int, concurrency: int, procs: int) -> dict[str, Any]:
    value = stored_pod_bytes()
    per = total // procs
    start = _start_at()
    results = _run_in_procs(etcd_worker, [(cluster.etcd_url, cluster.etcd_tls(), mode, i * per, per,
                                           concurrency // procs, value, start) for i in range(procs)])
    done = sum(r[0] for r in results)
    elapsed = max(r[2] for r in results) - min(r[1] for r in results)
    return {"ops": done, "seconds": round(elapsed, 3), "per_second": round(done / elapsed), "value_bytes": len(value),
            "concurrency": concurrency, "load_processes": procs}


def apiserver_creates(cluster: Processes, *, total: int, concurrency: int, procs: int,
                      conn: ClientConfig | None = None, rest: bool = False, typed: bool = False) -> dict[str, Any]:
    per = total // procs
    start = _start_at(3.0)
    if rest:
        results = _run_in_procs(rest_create_worker, [(conn or cluster.conn(), cluster.rest_url, f"rest{i}", per,
                                                      concurrency // procs, start) for i in range(procs)])
    else:
        prefix = "typed" if typed else "load"
        results = _run_in_procs(create_worker, [(conn or cluster.conn(), f"{prefix}{i}", per, concurrency // procs,
                                                 start, typed) for i in range(procs)])
    done = sum(r[0] for r in results)
    elapsed = max(r[2] for r in results) - min(r[1] for r in results)
    return {"creates": done, "errors": sum(r[3] for r in results), "seconds": round(elapsed, 3),
            "per_second": round(done / elapsed), "concurrency": concurrency, "load_processes": procs,
            "client_cpu_seconds": round(sum(r[4] for r in results), 2)}


def grpc_floor(cluster: Processes, *, total: int, concurrency: int, procs: int) -> dict[str, Any]:
    """The same load as `creates` against an echo server (echo_server): the CPU a unary call costs the server
    in gRPC and asyncio alone, which no work in the apiserver's handlers can win back."""
    from bench.harness import free_port, wait_port

    port = free_port()
    address = f"127.0.0.1:{port}"
    files = None if cluster.pki is None else (str(cluster.pki.crt("apiserver")), str(cluster.pki.key("apiserver")),
                                              str(cluster.pki.crt(certs.CA)))
    server = mp.get_context("spawn").Process(target=echo_server, args=(address, files), daemon=True)
    server.start()
    try:
        conn = cluster.conn(address)
        wait_port(port)
        before = cpu_seconds(server.pid)
        per = total // procs
        results = _run_in_procs(echo_worker, [(conn, per, concurrency // procs, _start_at(3.0))] * procs)
        cpu = cpu_seconds(server.pid) - before
    finally:
        server.kill()
        server.join()
    calls = sum(r[0] for r in results)
    elapsed = max(r[2] for r in results) - min(r[1] for r in results)
    return {"calls": calls, "seconds": round(elapsed, 3), "per_second": round(calls / elapsed),
            "server_cpu_us_per_call": round(cpu / calls * 1e6, 1), "concurrency": concurrency,
            "load_processes": procs}


def paced_latency(cluster: Processes, *, rate: float, seconds: float) -> dict[str, Any]:
    (result,) = _run_in_procs(paced_worker, [(cluster.conn(), rate, seconds)])
    lat = [x * 1000 for x in result["latencies"]]
    return {"rate": rate, "achieved_rate": round(result["achieved_rate"], 1), "creates": len(lat),
            "errors": result["errors"], "p50_ms": round(percentile(lat, 50), 2),
            "p99_ms": round(percentile(lat, 99), 2), "max_ms": round(max(lat), 2) if lat else None}


def fanout(cluster: Processes, workdir: Path, *, watchers: int, procs: int, rate: float,
           seconds: float, namespace: str = "fanout", watchers_per_connection: int = 10,
           rest: bool = False) -> dict[str, Any]:
    from api import convert, kinds
    from api.pb import core_pb2

    writes = int(rate * seconds)

    async def setup() -> str:

        async with cluster.client() as c:
            await c.create(core_pb2.Namespace(metadata={"name": namespace}))
            return (await c.list("pods", namespace)).resource_version

    rv = asyncio.run(setup())
    ready = [workdir / f"watch-ready-{namespace}-{i}" for i in range(procs)]
    per = watchers // procs
    ctx = mp.get_context("spawn")
    pool = ctx.Pool(procs)
    channels = max(1, per // watchers_per_connection)
    if rest:
        pending = [pool.apply_async(rest_watch_worker, (cluster.conn(), cluster.rest_url, namespace, per, rv,
                                                        str(ready[i]), seconds + 120)) for i in range(procs)]
    else:
        pending = [pool.apply_async(watch_worker, (cluster.conn(), namespace, per, channels, rv,
                                                   str(ready[i]), seconds + 120)) for i in range(procs)]
    time.sleep(3.0)  # let the watcher processes start and open their watches

    async def marker(name: str) -> None:

        async with cluster.client() as c:
            await c.create(kinds.unwrap(convert.manifest_to_object(pod_manifest(name, namespace))))

    asyncio.run(marker("prime"))
    deadline = time.monotonic() + 180
    while not all(p.exists() for p in ready):
        if time.monotonic() > deadline:
            raise RuntimeError("watchers never connected")
        time.sleep(0.1)

    async def write() -> dict[str, Any]:
        import grpc

        from api.pb import api_pb2

        errors: list[str] = []
        latencies: list[float] = []

        async def one(call: Any, raw: bytes) -> None:
            try:
                sent = time.perf_counter()
                await call(raw, timeout=30)
                latencies.append(time.perf_counter() - sent)
            except grpc.aio.AioRpcError as e:  # counted and reported: a failed write is a result, not a crash
                errors.append(f"{e.code().name}: {e.details()}")

        async with cluster.client() as c:
            call = c.channel.unary_unary("/kubelite.v1.Api/Create", request_serializer=None, response_deserializer=None)
            start = time.perf_counter()
            tasks = []
            for i in range(writes):
                await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
                doc = pod_manifest(f"fan-{i:05d}", namespace, {"bench/sent": repr(time.time())})
                raw = api_pb2.CreateRequest(object=convert.manifest_to_object(doc)).SerializeToString()
                tasks.append(asyncio.ensure_future(one(call, raw)))
            achieved = writes / (time.perf_counter() - start)
            await asyncio.gather(*tasks)
        return {"achieved_rate": achieved, "errors": errors, "latencies": latencies}

    written = _fast_run(write())
    asyncio.run(marker("done"))
    results = [p.get(timeout=seconds + 180) for p in pending]
    pool.close()
    pool.join()
    delays = [d * 1000 for r in results for d in r["delays"]]
    writes_ms = [t * 1000 for t in written["latencies"]]
    ok_writes = writes - len(written["errors"])
    return {"watchers": watchers, "watch_processes": procs, "connections": channels * procs, "writes": writes,
            "write_errors": len(written["errors"]),
            "first_write_error": written["errors"][0] if written["errors"] else "", "rate": rate,
            "achieved_rate": round(written["achieved_rate"], 1), "deliveries": len(delays),
            "expected_deliveries": ok_writes * per * procs,
            "watchers_complete": sum(1 for r in results for n in r["received"] if n == ok_writes),
            "p50_ms": round(percentile(delays, 50), 2), "p99_ms": round(percentile(delays, 99), 2),
            "max_ms": round(max(delays), 2) if delays else None,
            # How much of that the write itself took (request to answer), under the same watchers.
            "write_p50_ms": round(percentile(writes_ms, 50), 2), "write_p99_ms": round(percentile(writes_ms, 99), 2)}


def apply_file(cluster: Processes, workdir: Path, *, pods: int) -> dict[str, Any]:
    """`kubelite apply -f` of a file of `pods` pods, wall time: batched (CreateMany) against the unary baseline.

    The baseline is the same command against a second apiserver on the same etcd started with
    --no-batch-calls (as servers before CreateMany), so apply falls back to one Create per object, as it
    always did. Both apiservers run through both applies (each caches the other's writes), the baseline
    first; each applies its own copy of the file into a namespace of its own.
    """
    import yaml

    baseline_address = cluster.start_apiserver(cluster.etcd_url, wait=False, extra=["--no-batch-calls"],
                                               name="apiserver-unary")
    asyncio.run(_wait_healthy(cluster.conn(baseline_address)))
    runs: dict[str, Any] = {}
    try:
        for run, namespace, address in (("unary_baseline", "apply-unary", baseline_address),
                                        ("batched", "apply", cluster.address)):
            path = workdir / f"{namespace}.yaml"
            with path.open("w") as f:
                yaml.safe_dump_all((pod_manifest(f"applied-{i:05d}", namespace) for i in range(pods)), f)

            async def setup(namespace: str = namespace) -> None:
                from api.pb import core_pb2

                async with cluster.client() as c:
                    await c.create(core_pb2.Namespace(metadata={"name": namespace}))

            asyncio.run(setup())
            before = {k: cpu_seconds(p.pid) for k, p in cluster.procs.items()}
            start = time.perf_counter()
            proc = subprocess.run([str(BIN / "kubelite"), "apply", "-f", str(path), "--server", address],
                                  capture_output=True, text=True, timeout=600, env=cluster.env)
            wall = time.perf_counter() - start
            created = sum(1 for line in proc.stdout.splitlines() if line.endswith(" created"))
            cpu = {k: round(cpu_seconds(p.pid) - before[k], 2) for k, p in cluster.procs.items()}
            server = "apiserver-unary" if run == "unary_baseline" else "apiserver"
            runs[run] = {"seconds": round(wall, 2), "exit_code": proc.returncode, "created": created,
                         "cpu_seconds": cpu, "serving_apiserver_cpu_us_per_pod": round(cpu[server] / pods * 1e6, 1),
                         "stderr_tail": proc.stderr[-500:] if proc.returncode else ""}
    finally:
        cluster.stop("apiserver-unary")
    batched = runs["batched"]
    # "pods_each", not "pods": the phase's CPU per item would count both runs' pods as one run's.
    return {"pods_each": pods, "file_bytes": path.stat().st_size, "seconds": batched["seconds"],
            "exit_code": batched["exit_code"], "created": batched["created"],
            "baseline_seconds": runs["unary_baseline"]["seconds"],
            "speedup": round(runs["unary_baseline"]["seconds"] / batched["seconds"], 2), **runs}


def tls_cost(workdir: Path, *, total: int, concurrency: int, procs: int, rounds: int) -> dict[str, Any]:
    """Creates/s and CPU per create of fresh clusters with mutual TLS on every link and without TLS (the test-only
    plaintext switch), in alternating order, `rounds` of each."""
    runs: dict[str, list[dict[str, Any]]] = {"plaintext": [], "tls": []}
    for r in range(rounds):
        for mode in ("plaintext", "tls") if r % 2 == 0 else ("tls", "plaintext"):
            d = workdir / f"tls-{r}-{mode}"
            d.mkdir()
            c = Processes(d, tls=mode == "tls")
            try:
                c.start_etcd(quota=8 * GiB)
                c.start_apiserver(c.etcd_url, wait=False)
                asyncio.run(_wait_healthy(c.conn()))
                before = {k: cpu_seconds(p.pid) for k, p in c.procs.items()}
                res = apiserver_creates(c, total=total, concurrency=concurrency, procs=procs)
                spent = {k: cpu_seconds(p.pid) - before[k] for k, p in c.procs.items()}
                spent["clients"] = res.pop("client_cpu_seconds")
                spent["total"] = sum(spent.values())
                res["cpu_us_per_create"] = {k: round(v / res["creates"] * 1e6, 1) for k, v in spent.items()}
                res["round"] = r
                runs[mode].append(res)
            finally:
                c.stop_all()

    def mean(mode: str, key: str, sub: str = "") -> float:
        values = [x[key][sub] if sub else x[key] for x in runs[mode]]
        return sum(values) / len(values)

    out: dict[str, Any] = {"runs": runs, "creates_per_run": total, "concurrency": concurrency, "load_processes": procs}
    for mode in runs:
        out[mode] = {"creates_per_second": round(mean(mode, "per_second")),
                     "cpu_us_per_create": {k: round(mean(mode, "cpu_us_per_create", k), 1)
                                           for k in runs[mode][0]["cpu_us_per_create"]}}
    out["creates_per_second_cost"] = round(1 - out["tls"]["creates_per_second"]
                                           / out["plaintext"]["creates_per_second"], 3)
    out["cpu_per_create_cost"] = round(out["tls"]["cpu_us_per_create"]["total"]
                                       / out["plaintext"]["cpu_us_per_create"]["total"] - 1, 3)
    return out


def authz_cost(workdir: Path, *, total: int, concurrency: int, procs: int, rounds: int) -> dict[str, Any]:
    """Creates/s of fresh TLS clusters with authorization on (a user who is no cluster admin, allowed by a
    RoleBinding to `edit`, every create audited) and off (`--authorization-mode AlwaysAllow`, the admin, no audit
    log), alternating, `rounds` of each."""
    runs: dict[str, list[dict[str, Any]]] = {"off": [], "on": []}
    for r in range(rounds):
        for mode in ("off", "on") if r % 2 == 0 else ("on", "off"):
            d = workdir / f"authz-{r}-{mode}"
            d.mkdir()
            c = Processes(d, tls=True)
            try:
                c.start_etcd(quota=8 * GiB)
                extra = ["--authorization-mode", "AlwaysAllow"] if mode == "off" else \
                    ["--audit-log-path", str(d / "audit" / "audit.log")]
                c.start_apiserver(c.etcd_url, wait=False, extra=extra)
                asyncio.run(_wait_healthy(c.conn()))
                conn = c.conn()
                if mode == "on":
                    asyncio.run(_bind_bench_user(c))
                    conn = c.user_conn("bench-user", "bench-users")
                res = apiserver_creates(c, total=total, concurrency=concurrency, procs=procs, conn=conn)
                res.pop("client_cpu_seconds")
                res["round"] = r
                runs[mode].append(res)
            finally:
                c.stop_all()
    out: dict[str, Any] = {"runs": runs, "creates_per_run": total}
    for mode in runs:
        out[mode] = {"creates_per_second": round(sum(x["per_second"] for x in runs[mode]) / len(runs[mode])),
                     "errors": sum(x["errors"] for x in runs[mode])}
    out["creates_per_second_cost"] = round(1 - out["on"]["creates_per_second"] / out["off"]["creates_per_second"], 3)
    return out


async def _bind_bench_user(c: Processes) -> None:
    from api.pb import rbac_pb2

    async with c.client() as admin:
        await admin.create(rbac_pb2.RoleBinding(
            metadata={"name": "bench-edit", "namespace": "default"},
            subjects=[rbac_pb2.Subject(kind="User", name="bench-user", api_group="rbac.authorization.k8s.io")],
            role_ref=rbac_pb2.RoleRef(api_group="rbac.authorization.k8s.io", kind="ClusterRole", name="edit")))


# ---------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--etcd-ops", type=int, default=20000)
    parser.add_argument("--creates", type=int, default=20000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--load-procs", type=int, default=2)
    parser.add_argument("--paced-rate", type=float, default=200)
    parser.add_argument("--paced-seconds", type=float, default=10)
    parser.add_argument("--watchers", type=int, default=1000)
    parser.add_argument("--watch-procs", type=int, default=2)
    parser.add_argument("--watchers-per-connection", type=int, default=10)
    parser.add_argument("--fanout-rate", type=float, default=100)
    parser.add_argument("--fanout-seconds", type=float, default=10)
    parser.add_argument("--fanout-extra", default="100x100,1000x10",
                        help="more WATCHERSxRATE fan-out points measured after the main one (context for the cost "
                             "per delivery); empty for none")
    parser.add_argument("--apply-pods", type=int, default=10000)
    parser.add_argument("--rest-watchers", type=int, default=100,
                        help="REST watches in the REST fan-out (one HTTP connection each)")
    parser.add_argument("--plaintext", action="store_true",
                        help="run the phases without TLS (the test-only switch), to compare one against the other")
    parser.add_argument("--tls-creates", type=int, default=20000, help="creates per run of the TLS comparison")
    parser.add_argument("--tls-rounds", type=int, default=2, help="runs of each, TLS and plaintext, alternating")
    parser.add_argument("--authz-creates", type=int, default=20000, help="creates per run of the authz comparison")
    parser.add_argument("--authz-rounds", type=int, default=2, help="runs of each, authorization on and off")
    parser.add_argument("--only", default="",
                        help="comma-separated phases: etcd,creates,latency,fanout,apply,rest,tls,authz")
    parser.add_argument("--profile", default="", help="directory for py-spy raw profiles of the apiserver per phase")
    parser.add_argument("--profile-native", action="store_true", help="profile C/Cython frames too (py-spy --native)")
    args = parser.parse_args()
    phases = set(filter(None, args.only.split(","))) or {"etcd", "creates", "latency", "fanout", "apply", "rest",
                                                         "tls", "authz"}

    workdir = Path(tempfile.mkdtemp(prefix="kubelite-bench-api-"))
    cluster = Processes(workdir, tls=not args.plaintext)
    out: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "load_average_at_start": os.getloadavg()},
                           "targets": TARGETS, "transport": "plaintext" if args.plaintext else "mutual TLS"}
    try:
        cluster.start_etcd(quota=8 * GiB)
        if "etcd" in phases:
            etcd_pid = cluster.procs["etcd"].pid
            for name, mode in (("etcd_put", "put"), ("etcd_create_txn", "txn")):
                before, counted = cpu_seconds(etcd_pid), etcd_counters(cluster)
                out[name] = etcd_baseline(cluster, mode=mode, total=args.etcd_ops, concurrency=args.concurrency,
                                          procs=args.load_procs)
                out[name]["etcd_cpu_seconds"] = round(cpu_seconds(etcd_pid) - before, 2)
                out[name]["etcd_cpu_us_per_op"] = round(out[name]["etcd_cpu_seconds"] / out[name]["ops"] * 1e6, 1)
                out[name]["etcd_per_op"] = etcd_per_item(counted, etcd_counters(cluster), out[name]["ops"])
            # The apiserver gets an etcd of its own. Deleting the baselines' 40,000 keys instead left etcd
            # spending about 340 us of CPU per apiserver create against 200 on a fresh one: the comparison
            # would have charged the apiserver for the baseline's leftovers.
            cluster.stop("etcd")
            shutil.rmtree(workdir / "etcd")
            cluster.start_etcd(quota=8 * GiB)
        cluster.start_apiserver(cluster.etcd_url, wait=False, rest=True)
        asyncio.run(_wait_healthy(cluster.conn()))
        pid = cluster.procs["apiserver"].pid

        def phase(name: str, fn: Callable[[], dict[str, Any]], selector: str = "") -> None:
            if (selector or name) not in phases:
                return
            prof = Profiler(args.profile, pid, name, native=args.profile_native)
            before = {k: cpu_seconds(p.pid) for k, p in cluster.procs.items()}
            counted = etcd_counters(cluster)
            start = time.perf_counter()
            try:
                out[name] = fn()
            finally:
                prof.stop()
            wall = time.perf_counter() - start
            # CPU each server process used during the phase (2 CPUs are shared by servers and load generators).
            cpu = {k: round(cpu_seconds(p.pid) - before[k], 2) for k, p in cluster.procs.items()}
            out[name]["cpu_seconds"] = cpu
            out[name]["phase_wall_seconds"] = round(wall, 2)
            done = out[name].get("deliveries") or out[name].get("creates") or out[name].get("pods")
            if done:
                out[name]["apiserver_cpu_us_per_item"] = round(cpu["apiserver"] / done * 1e6, 1)
                if args.profile:
                    out[name]["apiserver_cpu_us_per_item_by_part"] = prof.breakdown(
                        out[name]["apiserver_cpu_us_per_item"])
                out[name]["etcd_cpu_us_per_item"] = round(cpu["etcd"] / done * 1e6, 1)
                out[name]["etcd_per_item"] = etcd_per_item(counted, etcd_counters(cluster), done)

        phase("creates", lambda: apiserver_creates(cluster, total=args.creates, concurrency=args.concurrency,
                                                   procs=args.load_procs))
        phase("client_creates", lambda: apiserver_creates(cluster, total=args.creates, concurrency=args.concurrency,
                                                          procs=args.load_procs, typed=True), "creates")
        if "client_creates" in out:
            # Its pods go again, outside the phase: the later phases meet the store the unary creates left, as
            # they did before this phase existed (full runs: fan-out p99 1,447 ms with them kept, 458 ms without).
            per = args.creates // args.load_procs
            _run_in_procs(delete_worker, [(cluster.conn(), [f"typed{i}-{j:06d}" for j in range(per)],
                                           args.concurrency // args.load_procs) for i in range(args.load_procs)])
        phase("floor", lambda: grpc_floor(cluster, total=args.creates, concurrency=args.concurrency,
                                          procs=args.load_procs), "creates")
        phase("latency", lambda: paced_latency(cluster, rate=args.paced_rate, seconds=args.paced_seconds))
        phase("fanout", lambda: fanout(cluster, workdir, watchers=args.watchers, procs=args.watch_procs,
                                       rate=args.fanout_rate, seconds=args.fanout_seconds,
                                       watchers_per_connection=args.watchers_per_connection))
        for point in filter(None, args.fanout_extra.split(",")) if "fanout" in phases else ():
            w, r = point.split("x")
            phase(f"fanout_{point}", lambda w=w, r=r, point=point: fanout(
                cluster, workdir, watchers=int(w), procs=args.watch_procs, rate=float(r),
                seconds=args.fanout_seconds, namespace=f"fanout-{point}",
                watchers_per_connection=args.watchers_per_connection), "fanout")
        phase("apply", lambda: apply_file(cluster, workdir, pods=args.apply_pods))
        # The REST face of the same process, with the same load, next to the gRPC figures above.
        phase("rest_creates", lambda: apiserver_creates(cluster, total=args.creates, concurrency=args.concurrency,
                                                        procs=args.load_procs, rest=True), "rest")
        phase("rest_fanout", lambda: fanout(cluster, workdir, watchers=args.rest_watchers, procs=args.watch_procs,
                                            rate=args.fanout_rate, seconds=args.fanout_seconds,
                                            namespace="fanout-rest", rest=True), "rest")
        if "tls" in phases:
            cluster.stop_all()  # the comparison runs on clusters of its own, with the machine to themselves
            out["tls"] = tls_cost(workdir, total=args.tls_creates, concurrency=args.concurrency,
                                  procs=args.load_procs, rounds=args.tls_rounds)
        if "authz" in phases:
            cluster.stop_all()
            out["authz"] = authz_cost(workdir, total=args.authz_creates, concurrency=args.concurrency,
                                      procs=args.load_procs, rounds=args.authz_rounds)
    finally:
        cluster.stop_all()
        out["machine"]["load_average_at_end"] = os.getloadavg()
        shutil.rmtree(workdir, ignore_errors=True)

    summary: dict[str, Any] = {}
    if "etcd_put" in out and "creates" in out:
        ratio = out["creates"]["per_second"] / out["etcd_put"]["per_second"]
        summary["create_to_etcd_put_ratio"] = round(ratio, 3)
        summary["create_ratio_ok"] = ratio >= TARGETS["create_ratio_min"]
        summary["create_to_etcd_txn_ratio"] = round(out["creates"]["per_second"]
                                                    / out["etcd_create_txn"]["per_second"], 3)
    if "client_creates" in out and "etcd_create_txn" in out:
        # The same creates through the typed client, which sends concurrent ones together (client/coalesce.py).
        summary["client_create_to_etcd_txn_ratio"] = round(out["client_creates"]["per_second"]
                                                           / out["etcd_create_txn"]["per_second"], 3)
        summary["apiserver_cpu_us_per_client_create"] = out["client_creates"]["apiserver_cpu_us_per_item"]
        summary["client_creates_ok"] = out["client_creates"]["errors"] == 0 and \
            summary["client_create_to_etcd_txn_ratio"] >= TARGETS["create_txn_ratio_min"] and \
            summary["apiserver_cpu_us_per_client_create"] <= TARGETS["create_cpu_us_max"]
    if "creates" in out and "floor" in out:
        # What a create costs the apiserver, next to what any unary call costs it in gRPC and asyncio.
        summary["apiserver_cpu_us_per_create"] = out["creates"]["apiserver_cpu_us_per_item"]
        summary["grpc_floor_cpu_us_per_call"] = out["floor"]["server_cpu_us_per_call"]
    if "latency" in out:
        summary["create_p99_ok"] = out["latency"]["p99_ms"] < TARGETS["create_p99_ms_max"]
    if "fanout" in out:
        summary["fanout_p99_ok"] = out["fanout"]["p99_ms"] < TARGETS["fanout_p99_ms_max"] and \
            out["fanout"]["deliveries"] == out["fanout"]["expected_deliveries"]
    if "tls" in out:
        summary["tls_creates_per_second_cost"] = out["tls"]["creates_per_second_cost"]
        summary["tls_cost_ok"] = out["tls"]["creates_per_second_cost"] < TARGETS["tls_create_cost_max"]
    if "authz" in out:
        summary["authz_creates_per_second_cost"] = out["authz"]["creates_per_second_cost"]
        summary["authz_cost_ok"] = out["authz"]["creates_per_second_cost"] < TARGETS["authz_create_cost_max"] and \
            out["authz"]["on"]["errors"] == 0
    if "rest_creates" in out and "creates" in out:
        summary["rest_to_grpc_creates_ratio"] = round(out["rest_creates"]["per_second"]
                                                      / out["creates"]["per_second"], 3)
    if "rest_fanout" in out:
        summary["rest_fanout_p99_ms"] = out["rest_fanout"]["p99_ms"]
    if "apply" in out:
        summary["apply_ok"] = out["apply"]["exit_code"] == 0 and out["apply"]["seconds"] < TARGETS["apply_seconds_max"]
    out["summary"] = summary
    json.dump(out, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
