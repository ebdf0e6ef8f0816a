"""Which network namespace the proxy would write rules into, and whether it is the machine's own; sockets in it.

The proxy belongs in a node's namespace; in the root namespace it would rewrite
the host's firewall. Identity is the (device, inode) of the namespace file.
/proc/1/ns/net is the reference when readable; where it is not (a sandbox that
hides pid 1), two facts still decide: since Linux 6.18 the initial network
namespace has the fixed inode 0xEFFFFFF9 (dynamic namespace inodes start at
0xF0000000, so no other namespace can have it), and a namespace bind-mounted
under /run/netns was made by `ip netns add`. Anything else is treated as the
root namespace.
"""

from __future__ import annotations

import ctypes
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

INIT_NET_INODE = 0xEFFFFFF9  # PROC_NET_INIT_INO
NETNS_RUN_DIR = Path("/run/netns")


def netns_path(netns: str) -> str:
    """A namespace given by name (under /run/netns) or by path."""
    return netns if "/" in netns else str(NETNS_RUN_DIR / netns)


@dataclass(frozen=True)
class Verdict:
    root: bool
    reason: str


def _identity(path: str | Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def compute_verdict(target: tuple[int, int], init: tuple[int, int] | None,
                    named: dict[str, tuple[int, int]]) -> Verdict:
    """Decide whether `target` is the root network namespace (pure; the inputs are namespace identities)."""
    if init is not None:
        if target == init:
            return Verdict(True, "it is the network namespace of pid 1")
        return Verdict(False, "it differs from the network namespace of pid 1")
    if target[1] == INIT_NET_INODE:
        return Verdict(True, "it has the initial network namespace's fixed inode")
    for name, ident in sorted(named.items()):
        if ident == target:
            return Verdict(False, f"it is the named network namespace {name!r}")
    return Verdict(True, "/proc/1/ns/net is unreadable and it is no named namespace under /run/netns, "
                         "so it cannot be told apart from the root network namespace")


def check(target: str = "/proc/self/ns/net") -> Verdict:
    """Whether the namespace at `target` (a /proc/*/ns/net or /run/netns/* path) is the root one."""
    ident = _identity(target)
    if ident is None:
        return Verdict(True, f"cannot open network namespace {target}")
    named: dict[str, tuple[int, int]] = {}
    if NETNS_RUN_DIR.is_dir():
        for entry in NETNS_RUN_DIR.iterdir():
            found = _identity(entry)
            if found is not None:
                named[entry.name] = found
    return compute_verdict(ident, _identity("/proc/1/ns/net"), named)


CLONE_NEWNET = 0x40000000


def _setns(fd: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


T = TypeVar("T")


def in_namespace(namespace: str, make: Callable[[], T]) -> T:
    """`make()` run inside `namespace` ("" for this process's own), e.g. to create a socket there.

    A socket belongs to the network namespace it was created in, whatever thread uses it later; so
    a throwaway thread enters the namespace, runs `make` and goes back (setns changes only the
    calling thread). Call it from a worker thread, never the event loop's.
    """
    if not namespace:
        return make()
    result: list[Any] = []

    def enter_and_make() -> None:
        try:
            with open("/proc/thread-self/ns/net", "rb") as own, open(netns_path(namespace), "rb") as target:
                _setns(target.fileno())
                try:
                    result.append(make())
                finally:
                    _setns(own.fileno())
        except BaseException as e:  # handed to the caller's thread
            result.append(e)

    thread = threading.Thread(target=enter_and_make, name="netns")
    thread.start()
    thread.join()
    found = result[0]
    if isinstance(found, BaseException):
        raise found
    return found  # type: ignore[no-any-return]


def listening_socket(namespace: str, port: int, address: str = "0.0.0.0") -> socket.socket:
    """A TCP socket listening on address:port inside `namespace` ("" for this process's own)."""

    def make() -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((address, port))
            sock.listen(128)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        return sock

    return in_namespace(namespace, make)
