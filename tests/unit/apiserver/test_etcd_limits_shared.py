"""etcd's limits live in one place: the etcd the bootstrap starts and the apiserver's flags agree on them."""

from __future__ import annotations

from pathlib import Path

from apiserver.storage import limits
from cli.daemons.apiserver import apiserver
from deploy.node.bootstrap import ControlPlaneSpec, etcd_argv


def _flag(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def test_bootstrap_starts_etcd_with_the_shared_limits() -> None:
    """The control-plane bootstrap (the lab and the VMs) starts etcd with the limits the apiserver writes within."""
    argv = etcd_argv(ControlPlaneSpec(address="10.0.0.1", data_dir=Path("/tmp/x")))
    assert _flag(argv, "--max-txn-ops") == str(limits.MAX_TXN_OPS)
    assert _flag(argv, "--max-request-bytes") == str(limits.MAX_REQUEST_BYTES)


def test_apiserver_flags_default_to_the_shared_limits() -> None:
    """`kubelite apiserver`'s --etcd-max-* flags default to what etcd is started with."""
    defaults = {p.name: p.default for p in apiserver.params}
    assert defaults["etcd_max_txn_ops"] == limits.MAX_TXN_OPS
    assert defaults["etcd_max_request_bytes"] == limits.MAX_REQUEST_BYTES
    assert defaults["max_object_bytes"] == limits.MAX_OBJECT_BYTES == 1536 * 1024
    limits.Limits()  # the defaults fit together
