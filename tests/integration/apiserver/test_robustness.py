"""Hostile input at the bytes level, and the operational endpoints: health, reflection, metrics, logs."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import grpc
import pytest
import testpki
from conftest import RunningApiserver
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from api.errors import InvalidError
from api.pb import api_pb2, core_pb2
from apiserver import wire
from client.api import Client

from .helpers import pod

UNARY = ["Create", "Get", "List", "Update", "UpdateStatus", "Delete", "Bind", "Scale", "Exec", "APIResources"]
STREAMS = ["Watch", "Logs"]
BIG = 4 * 1024 * 1024


@pytest.fixture
async def raw(apiserver: RunningApiserver) -> AsyncIterator[grpc.aio.Channel]:
    """A bytes-level channel: requests go out exactly as given, responses come back undecoded."""
    async with testpki.get().channel(apiserver.address, options=[
            ("grpc.max_send_message_length", 64 * 1024 * 1024)]) as channel:
        yield channel


async def _call(channel: grpc.aio.Channel, method: str, payload: bytes) -> tuple[grpc.StatusCode, str]:
    path = f"/kubelite.v1.Api/{method}"
    try:
        if method in STREAMS:
            call = channel.unary_stream(path, request_serializer=None, response_deserializer=None)(payload, timeout=10)
            async for _ in call:
                pass
        else:
            await channel.unary_unary(path, request_serializer=None, response_deserializer=None)(payload, timeout=10)
    except grpc.aio.AioRpcError as e:
        return e.code(), e.details() or ""
    return grpc.StatusCode.OK, ""


async def _still_serving(client: Client) -> None:
    created = await client.create(pod(f"alive-{uuid.uuid4().hex[:12]}"))
    assert (await client.get("pods", created.metadata.name, "default")) == created


def _deep_groups(depth: int) -> bytes:
    """An unknown field (15) holding `depth` nested groups."""
    return b"\x7b" * depth + b"\x7c" * depth


HOSTILE = [
    pytest.param(b"\xff\xfe\xfd\xfc" * 8, grpc.StatusCode.INVALID_ARGUMENT, "cannot decode", id="garbage"),
    pytest.param(b"\x0a\x05ab", grpc.StatusCode.INVALID_ARGUMENT, "cannot decode", id="truncated"),
    pytest.param(_deep_groups(100_000), grpc.StatusCode.INVALID_ARGUMENT, "cannot decode", id="deep-groups"),
    pytest.param(b"\x0a" + b"\xff" * 3 + b"\x0f" + b"x" * 100, grpc.StatusCode.INVALID_ARGUMENT, "cannot decode",
                 id="bogus-length"),
    pytest.param(b"\x0a" + wire.varint(BIG) + b"x" * BIG, grpc.StatusCode.RESOURCE_EXHAUSTED,
                 "larger than max", id="oversized"),
]


@pytest.mark.parametrize(("payload", "code", "detail"), HOSTILE)
async def test_hostile_bytes(raw: grpc.aio.Channel, client: Client, payload: bytes, code: grpc.StatusCode,
                             detail: str) -> None:
    """Garbage, truncated, absurdly nested or oversized requests to every method get INVALID_ARGUMENT or
    RESOURCE_EXHAUSTED, never a crash, and the server keeps serving."""
    for method in UNARY + STREAMS:
        got, details = await _call(raw, method, payload)
        assert got == code, (method, details)
        assert detail in details, method
        await _still_serving(client)


async def test_moderate_nesting_is_accepted(raw: grpc.aio.Channel) -> None:
    """Unknown nested groups within protobuf's depth limit are skipped, and the request works."""
    req = api_pb2.GetRequest(resource="namespaces", name="default").SerializeToString()
    code, details = await _call(raw, "Get", req + _deep_groups(50))
    assert code == grpc.StatusCode.OK, details


async def test_too_many_annotations(client: Client) -> None:
    """An object within the size limit but with more than 256 KiB of annotations is refused naming the field."""
    big = pod("p")
    big.metadata.annotations["blob"] = "x" * (300 * 1024)
    with pytest.raises(InvalidError, match=r"metadata\.annotations: Too long: must have at most 262144 bytes"):
        await client.create(big)


async def test_pod_status_stream_skips_garbage(raw: grpc.aio.Channel, client: Client) -> None:
    """The kubelet status stream ignores undecodable messages and applies the good ones."""
    created = await client.create(pod("p", node="n1"))
    call = raw.stream_stream("/kubelite.v1.Api/StreamPodStatus", request_serializer=None,
                             response_deserializer=api_pb2.PodStatusAck.FromString)
    stream = call(timeout=10)
    await stream.write(b"\xff\xfe garbage")
    good = api_pb2.PodStatusUpdate(namespace="default", name="p", uid=created.metadata.uid, sequence=1,
                                   status=core_pb2.PodStatus(phase="Running"))
    await stream.write(good.SerializeToString())
    ack = await stream.read()
    await stream.done_writing()
    assert (ack.name, ack.sequence, ack.error) == ("p", 1, "")
    assert (await client.get("pods", "p", "default")).status.phase == "Running"


async def test_failed_requests_are_logged(client: Client) -> None:
    """A refused request logs one request_failed event with verb, resource and code."""
    with capture_logs() as logs, pytest.raises(InvalidError):
        await client.create(pod("P"))
    failed = [e for e in logs if e["event"] == "request_failed"]
    assert len(failed) == 1
    assert failed[0]["verb"] == "create" and failed[0]["resource"] == "pods"
    assert failed[0]["code"] == "INVALID_ARGUMENT"
    assert "metadata.name: Invalid value: 'P'" in failed[0]["error"]


# ---------------------------------------------------------------- health, reflection, metrics


async def test_health_checking(apiserver: RunningApiserver) -> None:
    """The standard gRPC health service reports the server and the API service as SERVING."""
    async with testpki.get().channel(apiserver.address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for service in ("", "kubelite.v1.Api"):
            resp = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert resp.status == health_pb2.HealthCheckResponse.SERVING
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.Check(health_pb2.HealthCheckRequest(service="nope"), timeout=5)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_server_reflection(apiserver: RunningApiserver) -> None:
    """Server reflection lists the services and describes the API, so grpcurl works."""
    async with testpki.get().channel(apiserver.address) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)

        async def ask(req: reflection_pb2.ServerReflectionRequest) -> reflection_pb2.ServerReflectionResponse:
            async for resp in stub.ServerReflectionInfo(iter([req]), timeout=5):
                return resp
            raise AssertionError("no reflection response")

        listed = await ask(reflection_pb2.ServerReflectionRequest(list_services=""))
        names = {s.name for s in listed.list_services_response.service}
        assert {"kubelite.v1.Api", "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"} <= names
        described = await ask(reflection_pb2.ServerReflectionRequest(file_containing_symbol="kubelite.v1.Api"))
        assert described.file_descriptor_response.file_descriptor_proto


def _count(verb: str, resource: str, code: str) -> float:
    return REGISTRY.get_sample_value("apiserver_requests_total", {"verb": verb, "resource": resource,
                                                                  "code": code}) or 0.0


async def test_metrics_counters_move(client: Client) -> None:
    """Request counters and latency histograms count each request by verb, resource and code."""
    before = (_count("create", "pods", "OK"), _count("get", "pods", "NOT_FOUND"), _count("watch", "pods", "OK"))
    latency_before = REGISTRY.get_sample_value("apiserver_request_duration_seconds_count",
                                               {"verb": "create", "resource": "pods"}) or 0.0
    await client.create(pod("p"))
    await client.create(pod("q"))
    with pytest.raises(Exception, match="not found"):
        await client.get("pods", "ghost", "default")
    watch = client.watch("pods", "default")
    await watch.__anext__()
    await watch.aclose()
    after = (_count("create", "pods", "OK"), _count("get", "pods", "NOT_FOUND"), _count("watch", "pods", "OK"))
    assert after[0] - before[0] == 2
    assert after[1] - before[1] == 1
    assert after[2] - before[2] == 1
    assert REGISTRY.get_sample_value("apiserver_request_duration_seconds_count",
                                     {"verb": "create", "resource": "pods"}) == latency_before + 2
