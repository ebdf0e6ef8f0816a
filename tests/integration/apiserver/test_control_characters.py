"""Names with control characters are refused naming the field, from a raw gRPC client."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
import testpki
from conftest import RunningApiserver

from api.pb import api_pb2, core_pb2
from client.api import Client

from .helpers import pod

BAD_NAMES = [pytest.param("web\n", id="trailing-newline"), pytest.param("a\tb", id="tab"),
             pytest.param("web\x1b[31m", id="escape-sequence"), pytest.param("w\x00eb", id="nul"),
             pytest.param("web\u2028", id="line-separator")]


@pytest.fixture
async def channel(apiserver: RunningApiserver) -> AsyncIterator[grpc.aio.Channel]:
    async with testpki.get().channel(apiserver.address) as ch:
        yield ch


async def _refused(call, request) -> tuple[grpc.StatusCode, str]:  # type: ignore[no-untyped-def]
    try:
        await call(request, timeout=10)
    except grpc.aio.AioRpcError as e:
        return e.code(), e.details() or ""
    raise AssertionError("accepted")


@pytest.mark.parametrize("name", BAD_NAMES)
async def test_raw_client_gets_invalid_argument_naming_the_field(channel: grpc.aio.Channel, client: Client,
                                                                 name: str) -> None:
    """Create, Bind and Get with a control character in a name: INVALID_ARGUMENT naming the field, in one line,
    and nothing is stored."""
    create = channel.unary_unary("/kubelite.v1.Api/Create", request_serializer=api_pb2.CreateRequest.SerializeToString,
                                 response_deserializer=None)
    for obj, field in ((pod(name), "metadata.name"), (pod("p", labels={"app": name}), "metadata.labels[app]"),
                       (pod("p", node=name), "spec.nodeName")):
        req = api_pb2.CreateRequest()
        req.object.pod.CopyFrom(obj)
        code, details = await _refused(create, req)
        assert code == grpc.StatusCode.INVALID_ARGUMENT
        assert f"{field}: Invalid value" in details
        assert "\n" not in details and "\t" not in details and "\x1b" not in details
    await client.create(pod("p"))
    bind = channel.unary_unary("/kubelite.v1.Api/Bind", request_serializer=api_pb2.BindRequest.SerializeToString,
                               response_deserializer=None)
    code, details = await _refused(bind, api_pb2.BindRequest(namespace="default", name="p", node_name=name))
    assert (code, details.split(":")[0]) == (grpc.StatusCode.INVALID_ARGUMENT, "request")
    assert "nodeName: Invalid value" in details
    get = channel.unary_unary("/kubelite.v1.Api/Get", request_serializer=api_pb2.GetRequest.SerializeToString,
                              response_deserializer=None)
    code, details = await _refused(get, api_pb2.GetRequest(resource="pods", namespace="default", name=name))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "name: Invalid value" in details
    assert [p.metadata.name for p in (await client.list("pods", "default")).items] == ["p"]
    assert not (await client.get("pods", "p", "default")).spec.node_name


async def test_status_stream_refuses_control_characters_in_an_ack(client: Client) -> None:
    """A kubelet status update with a control character in a reason gets an acknowledgement naming the field;
    a multi-line message is free text and is stored."""
    created = await client.create(pod("p", node="n1"))
    stream = client.stream_pod_status()
    for seq, (reason, message) in enumerate((("Bad\x1b[2J", "x"), ("Crashed", "line one\nline two")), start=1):
        status = core_pb2.PodStatus(phase="Running", reason=reason, message=message)
        await stream.write(api_pb2.PodStatusUpdate(namespace="default", name="p", uid=created.metadata.uid,
                                                   sequence=seq, status=status))
        ack = await stream.read()
        assert ack.sequence == seq
        if seq == 1:
            assert "status.reason: Invalid value" in ack.error and ack.code == "Invalid"
        else:
            assert ack.error == ""
    await stream.done_writing()
    got = await client.get("pods", "p", "default")
    assert (got.status.reason, got.status.message) == ("Crashed", "line one\nline two")
