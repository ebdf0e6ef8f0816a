"""Helpers for proxy tests: scratch network namespaces, a proxier running for a block, kernel state."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

from client.api import Client
from proxy import netns
from proxy.proxier import Proxier, ProxierConfig
from proxy.rules import JUMPS
from proxy.saved import parse_saved

T = TypeVar("T")
PREFIX = "kltest-"


def in_netns(ns: str, *argv: str, timeout: float = 30.0, check: bool = True,
             stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run a command inside scratch namespace `ns` (never anything else)."""
    assert ns.startswith(PREFIX), f"tests only touch kltest- namespaces, not {ns!r}"
    r = subprocess.run(["nsenter", f"--net=/run/netns/{ns}", "--", *argv], capture_output=True, text=True,
                       timeout=timeout, input=stdin, check=False)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} in {ns} failed ({r.returncode}): {r.stderr.strip()}")
    return r


def add_netns(role: str) -> str:
    name = f"{PREFIX}{secrets.token_hex(3)}-{role}"
    subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True, timeout=10)
    verdict = netns.check(f"/run/netns/{name}")
    assert not verdict.root, verdict.reason
    in_netns(name, "ip", "link", "set", "lo", "up")
    return name


def del_netns(name: str) -> None:
    assert name.startswith(PREFIX)
    subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=10, check=False)


def saved(ns: str) -> dict[str, Any]:
    """iptables-save of the nat and filter tables in `ns`, parsed."""
    return {t: parse_saved(in_netns(ns, "iptables-save", "-t", t).stdout) for t in ("nat", "filter")}


def counters(ns: str, table: str) -> dict[str, tuple[int, int]]:
    """Each rule of `table` in `ns` with its (packets, bytes) counters (`iptables-save -c`)."""
    out = {}
    for line in in_netns(ns, "iptables-save", "-c", "-t", table).stdout.splitlines():
        if line.startswith("[") and " -A " in line:
            counter, rule = line.split(" ", 1)
            packets, byte_count = counter.strip("[]").split(":")
            out[rule] = (int(packets), int(byte_count))
    return out


def proxy_rules(ns: str) -> set[str]:
    """Every rule in the proxy's own chains (not the jumps in built-in chains)."""
    out = set()
    for table, tab in saved(ns).items():
        for rule in tab.rules:
            chain = rule.split(" ", 2)[1]
            if chain.startswith("KUBE-"):
                out.add(f"{table}:{rule}")
    return out


def jump_counts(ns: str) -> dict[str, int]:
    state = saved(ns)
    return {j.saved: state[j.table].rules.count(j.saved) for j in JUMPS}


async def eventually(check: Callable[[], Awaitable[T | None] | T | None], *, timeout: float = 10.0,
                     interval: float = 0.05, what: str = "condition") -> T:
    """Poll `check` (sync or async) until it returns something truthy; fail naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result  # type: ignore[return-value]
        last = result
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def proxier_config(ns: str, **overrides: Any) -> ProxierConfig:
    base: dict[str, Any] = {"node_name": "n1", "netns": ns, "flush_check_period": 0.2, "min_sync_period": 0.05}
    base.update(overrides)
    return ProxierConfig(**base)


@contextlib.asynccontextmanager
async def running_proxier(client: Client, config: ProxierConfig) -> AsyncIterator[Proxier]:
    """A proxier writing into its scratch namespace for the duration of the block (first full sync done)."""
    proxier = Proxier(client, config)
    task = asyncio.create_task(proxier.run())
    try:
        waiter = asyncio.create_task(proxier.synced.wait())
        done, _ = await asyncio.wait({task, waiter}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            task.result()
        assert waiter in done, "proxier did not sync"
        yield proxier
    finally:
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=15)
        assert done, "the proxier did not stop within 15 s of being cancelled"
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def synced_to(proxier: Proxier, key: str, *, present: bool = True, timeout: float = 5.0) -> None:
    """Wait until the proxier has applied Service `key` (or its removal)."""
    await eventually(lambda: (key in proxier.state) == present and not proxier._dirty, timeout=timeout,
                     what=f"{key} {'applied' if present else 'removed'}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def root_conftest() -> ModuleType:
    """tests/conftest.py (start_apiserver and friends), found by path: `import conftest` may name another one."""
    path = Path(__file__).resolve().parents[2] / "conftest.py"
    for module in list(sys.modules.values()):
        if getattr(module, "__file__", None) == str(path):
            return module
    spec = importlib.util.spec_from_file_location("kubelite_tests_conftest", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def kubelite() -> str:
    """This installation's `kubelite` script (next to the interpreter running the tests)."""
    return str(Path(sys.executable).with_name("kubelite"))
