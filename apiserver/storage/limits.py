"""etcd's request limits: what every kubelite etcd is started with, and what the apiserver assumes.

The lab, the node bootstrap (VMs) and the test fixtures start etcd with `etcd_flags()`; the
apiserver's `--etcd-max-txn-ops` and `--etcd-max-request-bytes` default to the same numbers,
and group commit packs writes so that no transaction exceeds them (see groupcommit.py).

Both are raised above etcd's defaults (128 operations, 1.5 MiB): every NodePort of a Service
is a key claimed in the Service's own transaction, so a Service with N node ports is a
transaction of N + 2 operations, and a transaction must carry an object of the largest size
the apiserver accepts (1.5 MiB, as Kubernetes) with room to spare. An apiserver pointed at
an etcd with other limits must be given them through those two flags.
"""

from __future__ import annotations

from dataclasses import dataclass

from api.limits import MAX_OBJECT_BYTES

MAX_TXN_OPS = 1024
MAX_REQUEST_BYTES = 3 * 1024 * 1024
# etcd counts the whole raft request (header and framing around the transaction): keep this much free.
REQUEST_OVERHEAD = 16 * 1024


def etcd_flags() -> list[str]:
    """The limit flags for an etcd that kubelite's apiserver writes to."""
    return ["--max-txn-ops", str(MAX_TXN_OPS), "--max-request-bytes", str(MAX_REQUEST_BYTES)]


@dataclass(frozen=True)
class Limits:
    """The limits one apiserver writes within."""

    max_txn_ops: int = MAX_TXN_OPS
    max_request_bytes: int = MAX_REQUEST_BYTES
    max_object_bytes: int = MAX_OBJECT_BYTES

    def __post_init__(self) -> None:
        if self.max_txn_ops < 2:
            raise ValueError(f"--etcd-max-txn-ops must be at least 2, not {self.max_txn_ops}")
        if self.max_object_bytes + REQUEST_OVERHEAD > self.max_request_bytes:
            raise ValueError(f"--max-object-bytes ({self.max_object_bytes}) must leave {REQUEST_OVERHEAD} bytes "
                             f"below --etcd-max-request-bytes ({self.max_request_bytes})")

    @property
    def txn_bytes(self) -> int:
        """The most bytes one transaction may hold."""
        return self.max_request_bytes - REQUEST_OVERHEAD
