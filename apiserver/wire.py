"""Just enough of the protobuf wire format to concatenate pre-encoded messages.

The watch cache encodes each object once; List responses and watch batches are
then built by joining bytes, never by re-serializing messages per reader.
"""

from __future__ import annotations


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def field_bytes(number: int, data: bytes) -> bytes:
    """A length-delimited field (string, bytes or embedded message)."""
    return varint((number << 3) | 2) + varint(len(data)) + data


def field_varint(number: int, value: int) -> bytes:
    return varint(number << 3) + varint(value)
