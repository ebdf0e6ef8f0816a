"""The hand-written protobuf wire encoding agrees with the protobuf library."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from api.pb import api_pb2, core_pb2
from apiserver import wire


@pytest.mark.parametrize(("n", "encoded"), [
    pytest.param(0, b"\x00", id="zero"),
    pytest.param(1, b"\x01", id="one"),
    pytest.param(127, b"\x7f", id="largest-one-byte"),
    pytest.param(128, b"\x80\x01", id="smallest-two-bytes"),
    pytest.param(300, b"\xac\x02", id="three-hundred"),
    pytest.param(2**32, b"\x80\x80\x80\x80\x10", id="two-to-the-32"),
])
def test_varint(n: int, encoded: bytes) -> None:
    """Varints encode seven bits per byte, least significant first."""
    assert wire.varint(n) == encoded


@given(st.text(max_size=300), st.text(max_size=50), st.integers(0, 2**62))
def test_fields_parse_as_protobuf(name: str, continue_: str, remaining: int) -> None:
    """Hand-built ListResponse fields parse with the protobuf library to the same values."""
    item = api_pb2.Object(pod=core_pb2.Pod(metadata={"name": name})).SerializeToString()
    raw = (wire.field_bytes(1, item) + wire.field_bytes(2, b"42") + wire.field_bytes(3, continue_.encode())
           + wire.field_varint(4, remaining))
    resp = api_pb2.ListResponse.FromString(raw)
    assert resp.items[0].pod.metadata.name == name
    assert resp.resource_version == "42"
    assert getattr(resp, "continue") == continue_
    assert resp.remaining_item_count == remaining


@given(st.text(max_size=20), st.integers(1, 2**40))
def test_appended_metadata_merges_into_stored_bytes(name: str, rev: int) -> None:
    """Appending `metadata { resourceVersion }` to stored bytes sets the version and keeps every other field."""
    pod = core_pb2.Pod(metadata={"name": name, "uid": "u", "resource_version": "1"}, spec={"node_name": "n"})
    raw = pod.SerializeToString() + wire.field_bytes(3, wire.field_bytes(5, str(rev).encode()))
    merged = core_pb2.Pod.FromString(raw)
    assert merged.metadata.resource_version == str(rev)
    assert (merged.metadata.name, merged.metadata.uid, merged.spec.node_name) == (name, "u", "n")
