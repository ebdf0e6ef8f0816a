"""Wall-clock helpers: protobuf Timestamps as float seconds and back, and "now" as a Timestamp."""

from __future__ import annotations

import time

from google.protobuf.timestamp_pb2 import Timestamp


def now() -> float:
    """Seconds since the epoch (controllers plan with float times)."""
    return time.time()


def seconds(ts: Timestamp) -> float:
    """A Timestamp as float seconds since the epoch (0.0 when unset)."""
    return ts.seconds + ts.nanos / 1e9


def timestamp(at: float | None = None) -> Timestamp:
    """`at` (default: now) as a Timestamp, to the nanosecond: what the apiserver stamps on objects."""
    at = time.time() if at is None else at
    ts = Timestamp()
    ts.seconds = int(at)
    ts.nanos = round((at - int(at)) * 1e9) % 1_000_000_000
    return ts


def whole_seconds(at: float) -> Timestamp:
    """Whole seconds, as Kubernetes stores the times a kubelet reports."""
    return Timestamp(seconds=int(at))
