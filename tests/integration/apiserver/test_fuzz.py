"""Fuzzing every RPC of the API service against `kubelite apiserver` as a real process.

Random messages built from the request types' descriptors, valid requests with bytes flipped, cut short
or spliced, and requests with huge repeated fields: every call must end in a status a client can act on
(never INTERNAL, UNKNOWN or CANCELLED), after each batch the server must still answer a Get, and its
memory must stay bounded.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
import testpki
from conftest import Etcd, free_port, start_etcd, stop_etcd
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api import kinds
from api.pb import api_pb2, apps_pb2, core_pb2

from .helpers import make, pod
from .test_process import Proc, _spawn, _stop, _wait_serving

SERVICE = "/kubelite.v1.Api/"
C = grpc.StatusCode
# What a client can act on. UNAVAILABLE only where a kubelet is behind the call (logs, exec);
# DEADLINE_EXCEEDED only for a resourceVersion the server has not reached (see check).
ACTIONABLE = {C.OK, C.INVALID_ARGUMENT, C.NOT_FOUND, C.ALREADY_EXISTS, C.ABORTED, C.FAILED_PRECONDITION,
              C.RESOURCE_EXHAUSTED, C.OUT_OF_RANGE}
EXTRA = {"Exec": {C.UNAVAILABLE}, "Logs": {C.UNAVAILABLE}}
# The server's resident memory may grow this much over the whole suite (caches of what the fuzzer created).
MEMORY_GROWTH = 256 * 1024 * 1024

VALID: dict[str, Message] = {
    "Create": api_pb2.CreateRequest(object=kinds.wrap(pod("fuzz-new"))),
    "Get": api_pb2.GetRequest(resource="pods", namespace="default", name="anchor"),
    "List": api_pb2.ListRequest(resource="pods", namespace="default", label_selector="app in (a,b),!x",
                                field_selector="spec.nodeName=n1", limit=5),
    "Update": api_pb2.UpdateRequest(object=kinds.wrap(pod("fuzz-upd", labels={"a": "b"}))),
    "UpdateStatus": api_pb2.UpdateRequest(object=kinds.wrap(core_pb2.Pod(
        metadata={"name": "fuzz-upd", "namespace": "default"}, status={"phase": "Running"}))),
    "Delete": api_pb2.DeleteRequest(resource="pods", namespace="default", name="fuzz-del",
                                    propagation_policy="Foreground", grace_period_seconds=0),
    "Bind": api_pb2.BindRequest(namespace="default", name="fuzz-bind", node_name="n1"),
    "Scale": api_pb2.ScaleRequest(resource="deployments", namespace="default", name="fuzz-web", replicas=3),
    "Exec": api_pb2.ExecRequest(namespace="default", name="fuzz-bound", container="c", command=["sh", "-c", "true"],
                                timeout_seconds=5),
    "APIResources": api_pb2.APIResourcesRequest(),
    "Watch": api_pb2.WatchRequest(resource="pods", namespace="default", resource_version="0",
                                  allow_bookmarks=True),
    "Logs": api_pb2.LogsRequest(namespace="default", name="fuzz-bound", follow=False, tail_lines=3),
    "StreamPodStatus": api_pb2.PodStatusUpdate(namespace="default", name="fuzz-bound", sequence=1,
                                               status=core_pb2.PodStatus(phase="Running")),
}
STREAMS = ("Watch", "Logs")
STREAM_WAIT = 1.0  # how long a stream may stay silent (a watch of nothing) before the test moves on
METHODS = sorted(VALID)


@dataclass
class Server:
    etcd: Etcd
    proc: Proc
    channel: grpc.Channel

    def rss(self) -> int:
        for line in Path(f"/proc/{self.proc.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`kubelite apiserver` as a process over its own etcd, with the objects the valid requests name."""
    etcd = start_etcd()
    proc = _spawn(etcd.url, free_port(), tmp_path_factory.mktemp("fuzz"))
    try:
        asyncio.run(_wait_serving(proc))
        channel = testpki.get().channel(proc.address, sync=True, options=[
            ("grpc.max_send_message_length", 64 * 1024 * 1024), ("grpc.max_receive_message_length", -1)])
        s = Server(etcd, proc, channel)
        create = channel.unary_unary(SERVICE + "Create", request_serializer=api_pb2.CreateRequest.SerializeToString,
                                     response_deserializer=None)
        for obj in (pod("anchor"), pod("fuzz-upd"), pod("fuzz-del"), pod("fuzz-bind"), pod("fuzz-bound", node="n1"),
                    make("Node", "n1"), make("Deployment", "fuzz-web")):
            create(api_pb2.CreateRequest(object=kinds.wrap(obj)), timeout=10)
        yield s
        channel.close()
    finally:
        _stop(proc)
        stop_etcd(etcd)


def call(server: Server, method: str, payload: bytes | list[bytes]) -> tuple[grpc.StatusCode, str]:
    """Send raw bytes to `method`; the status the call ended with (a stream: after its first message)."""
    ch = server.channel
    try:
        if method == "StreamPodStatus":
            frames = payload if isinstance(payload, list) else [payload]
            responses = ch.stream_stream(SERVICE + method, request_serializer=None,
                                         response_deserializer=None)(iter(frames), timeout=10)
            for _ in responses:
                pass
        elif method in STREAMS:
            responses = ch.unary_stream(SERVICE + method, request_serializer=None,
                                        response_deserializer=None)(payload, timeout=STREAM_WAIT)
            try:
                next(responses)  # a watch sends its first batch at once, or nothing until a change
            except StopIteration:
                pass
            responses.cancel()
        else:
            ch.unary_unary(SERVICE + method, request_serializer=None, response_deserializer=None)(payload, timeout=10)
    except grpc.RpcError as e:
        if method in STREAMS and (e.code(), e.details()) in ((C.CANCELLED, "Locally cancelled by application!"),
                                                             (C.DEADLINE_EXCEEDED, "Deadline Exceeded")):
            return C.OK, ""  # this test's own cancel after the first message, or its own deadline on an idle watch
        return e.code(), e.details() or ""
    return C.OK, ""


def check(server: Server, method: str, payloads: list[bytes]) -> None:
    """Every payload gets an actionable status; then the server answers a Get within 5 seconds."""
    for payload in payloads:
        code, details = call(server, method, payload)
        if code == C.DEADLINE_EXCEEDED and details.startswith("too large resource version"):
            continue  # a version the server has not reached (yet): the client may retry
        assert code in ACTIONABLE | EXTRA.get(method, set()), (method, code, details, payload[:200])
    get = server.channel.unary_unary(SERVICE + "Get", request_serializer=api_pb2.GetRequest.SerializeToString,
                                     response_deserializer=None)
    start = time.monotonic()
    try:
        get(VALID["Get"], timeout=5)
    except grpc.RpcError as e:
        assert e.code() == C.NOT_FOUND, e  # the fuzzer may have deleted it; the server still answered
    assert time.monotonic() - start < 5


# ---------------------------------------------------------------- strategies

_STRINGS = st.one_of(
    st.sampled_from(["", "default", "pods", "Pod", "anchor", "n1", "fuzz-bound", "deployments", "0", "-1",
                     "9999999999", "a=b", "a in (", "!", "spec.nodeName=", "web\n", "a\tb", "\x00", "é", "*"]),
    st.text(max_size=24),
)
_INT_RANGES = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1), FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1), FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1), FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
}


def _scalar(fd: FieldDescriptor) -> st.SearchStrategy[Any]:
    if fd.type == FieldDescriptor.TYPE_STRING:
        return _STRINGS
    if fd.type in _INT_RANGES:
        lo, hi = _INT_RANGES[fd.type]
        return st.one_of(st.sampled_from([0, 1, -1 if lo < 0 else 2, lo, hi]), st.integers(lo, hi))
    if fd.type == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if fd.type == FieldDescriptor.TYPE_BYTES:
        return st.binary(max_size=32)
    if fd.type in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return st.floats(allow_nan=True, allow_infinity=True, width=32 if fd.type == FieldDescriptor.TYPE_FLOAT
                         else 64)
    if fd.type == FieldDescriptor.TYPE_ENUM:
        return st.sampled_from([v.number for v in fd.enum_type.values])
    raise AssertionError(f"no strategy for {fd.full_name}")


def messages(desc: Descriptor, depth: int = 0) -> st.SearchStrategy[Message]:
    """Messages of `desc` with any subset of fields set to random values (nested up to a few levels)."""
    from google.protobuf import message_factory

    cls = message_factory.GetMessageClass(desc)
    if depth > 4:
        return st.just(cls())
    optional: dict[str, st.SearchStrategy[Any]] = {}
    for fd in desc.fields:
        if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
            vfd = fd.message_type.fields_by_name["value"]
            value = st.deferred(lambda v=vfd, d=depth: messages(v.message_type, d + 1)) if vfd.message_type \
                else _scalar(vfd)
            optional[fd.name] = st.dictionaries(_STRINGS, value, max_size=3)
        elif fd.message_type is not None:
            sub = st.deferred(lambda f=fd, d=depth: messages(f.message_type, d + 1))
            optional[fd.name] = st.lists(sub, max_size=3) if fd.is_repeated else sub
        else:
            optional[fd.name] = st.lists(_scalar(fd), max_size=4) if fd.is_repeated else _scalar(fd)
    return st.fixed_dictionaries({}, optional=optional).map(lambda kw: _build(cls, kw))


def _build(cls: Callable[..., Message], fields: dict[str, Any]) -> Message:
    msg = cls()
    for name, value in fields.items():
        field = getattr(msg, name)
        if isinstance(value, dict):
            for k, v in value.items():
                if isinstance(v, Message):
                    field[k].CopyFrom(v)
                else:
                    field[k] = v
        elif isinstance(value, list):
            field.extend(value)
        elif isinstance(value, Message):
            field.CopyFrom(value)
        else:
            setattr(msg, name, value)
    return msg


@st.composite
def mutated(draw: st.DrawFn, valid: bytes) -> bytes:
    """`valid` with a few bytes flipped, inserted, deleted, cut short or duplicated."""
    data = bytearray(valid)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "duplicate"]))
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[pos] ^= draw(st.integers(1, 255))
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete" and data:
            del data[pos:pos + draw(st.integers(1, 8))]
        elif op == "truncate":
            del data[pos:]
        elif op == "duplicate":
            data += data[pos:pos + draw(st.integers(1, 64))]
    return bytes(data)


def payloads(method: str) -> st.SearchStrategy[bytes]:
    valid = VALID[method].SerializeToString()
    cls = type(VALID[method])
    return st.one_of(
        messages(cls.DESCRIPTOR).map(lambda m: m.SerializeToString()),
        mutated(valid),
        st.integers(0, max(0, len(valid) - 1)).map(lambda n: valid[:n]),  # a truncated frame
        st.binary(max_size=64),
    )


FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), derandomize=False)


@pytest.mark.parametrize("method", METHODS)
def test_fuzzed_requests_get_actionable_statuses(server: Server, method: str) -> None:
    """Random, mutated and truncated requests to each RPC end in a status a client can act on, and the server
    answers a Get after each batch."""

    @FUZZ
    @given(batch=st.lists(payloads(method), min_size=1, max_size=6))
    def run(batch: list[bytes]) -> None:
        if method == "StreamPodStatus":
            check(server, method, [batch])  # type: ignore[list-item]  # one stream carries the whole batch
        else:
            check(server, method, batch)

    run()


def _huge() -> list[tuple[str, Message]]:
    many_labels = pod("huge-labels")
    for i in range(60_000):
        many_labels.metadata.labels[f"k{i}"] = "v"
    many_containers = pod("huge-containers")
    for i in range(20_000):
        many_containers.spec.containers.add(name=f"c{i}", image="i")
    many_ports = make("Service", "huge-ports")
    for i in range(50_000):
        many_ports.spec.ports.add(name=f"p{i}", port=1 + i % 65535)
    deep_status = core_pb2.Pod(metadata={"name": "anchor", "namespace": "default"})
    for i in range(30_000):
        deep_status.status.conditions.add(type=f"T{i}", status="True", message="x" * 20)
    rs = apps_pb2.ReplicaSet(metadata={"name": "huge-rs", "namespace": "default"})
    rs.spec.selector.match_expressions.add(key="app", operator="In", values=[f"v{i}" for i in range(100_000)])
    return [
        ("Create", api_pb2.CreateRequest(object=kinds.wrap(many_labels))),
        ("Create", api_pb2.CreateRequest(object=kinds.wrap(many_containers))),
        ("Create", api_pb2.CreateRequest(object=kinds.wrap(many_ports))),
        ("Create", api_pb2.CreateRequest(object=kinds.wrap(rs))),
        ("UpdateStatus", api_pb2.UpdateRequest(object=kinds.wrap(deep_status))),
        ("List", api_pb2.ListRequest(resource="pods", label_selector=",".join(f"k{i}=v" for i in range(200_000)))),
        ("List", api_pb2.ListRequest(resource="pods", label_selector="a in (" + ",".join(
            str(i) for i in range(300_000)) + ")")),
        ("Watch", api_pb2.WatchRequest(resource="pods", field_selector=",".join(
            "spec.nodeName=n1" for _ in range(100_000)))),
        ("Exec", api_pb2.ExecRequest(namespace="default", name="fuzz-bound", command=["x"] * 500_000)),
        ("Delete", api_pb2.DeleteRequest(resource="pods", namespace="default", name="x" * 2_000_000)),
        ("StreamPodStatus", api_pb2.PodStatusUpdate(namespace="default", name="fuzz-bound",
                                                    status=deep_status.status)),
    ]


def test_huge_repeated_fields_are_refused_and_memory_stays_bounded(server: Server) -> None:
    """Requests with tens of thousands of labels, containers, ports, conditions, selector terms or arguments
    each get an actionable status; the server keeps answering, and its memory stays bounded."""
    before = server.rss()
    for _ in range(3):
        for method, msg in _huge():
            check(server, method, [msg.SerializeToString()])
    assert server.rss() - before < MEMORY_GROWTH, (before, server.rss())


def test_memory_stays_bounded_after_the_fuzzing(server: Server) -> None:
    """After every fuzzed batch (this module's earlier tests), the server still serves and has not grown
    without bound."""
    check(server, "APIResources", [b""])
    assert server.rss() < 1024 * 1024 * 1024, server.rss()
