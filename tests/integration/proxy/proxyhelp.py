"""Helpers for proxy tests: scratch network namespaces, a proxier running for a block, kernel state in either mode."""

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
from proxy import netns, nftrules
from proxy.proxier import Proxier, ProxierConfig
from proxy.rules import JUMPS
from proxy.saved import parse_saved

MODES = ("iptables", "nftables")

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


def parse_nft(text: str) -> tuple[dict[str, list[str]], dict[str, set[str]]]:
    """`nft list table` output as (chain -> rule lines, map -> element texts); set elements inside a rule are
    sorted so that the kernel's order does not matter."""
    chains: dict[str, list[str]] = {}
    maps: dict[str, set[str]] = {}
    current: list[str] | None = None
    elements: set[str] | None = None
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if pending:
            pending += " " + line
            if line.endswith("}"):
                assert elements is not None
                elements.update(e.strip() for e in pending[pending.index("{") + 1:-1].split(","))
                pending = ""
            continue
        if line.startswith("chain "):
            current, elements = chains.setdefault(line[6:-2], []), None
        elif line.startswith(("map ", "set ")):
            current, elements = None, maps.setdefault(line[4:-2], set())
        elif line.startswith("elements = {"):
            pending = line
            if line.endswith("}"):
                elements.update(e.strip() for e in line[line.index("{") + 1:-1].split(","))  # type: ignore[union-attr]
                pending = ""
        elif current is not None and line and line != "}" and not line.startswith("type "):
            current.append(line.split(" # handle ")[0])
    return chains, maps


def nft_table(ns: str) -> tuple[dict[str, list[str]], dict[str, set[str]]] | None:
    r = in_netns(ns, "nft", "list", "table", "ip", nftrules.TABLE, check=False)
    return parse_nft(r.stdout) if r.returncode == 0 else None


def nft_rendered(state: dict[str, Any]) -> tuple[dict[str, list[str]], dict[str, set[str]]]:
    """The table a state should leave, in parse_nft's form."""
    chains = {name: list(rules) for name, rules in nftrules.FIXED_RULES.items()}
    maps: dict[str, set[str]] = {name: set() for name in nftrules.MAPS}
    for rules in state.values():
        for name, chain_rules in rules.chains.items():
            chains[name] = [nftrules.rule_text(r) for r in chain_rules]
        for e in rules.element_list():
            maps[e.map].add(e.text())
        for name in rules.sets:
            maps[name] = set()
    return chains, maps


def installed(ns: str, mode: str) -> Any:
    """What the proxy installed, comparable with `rendered` of the same mode."""
    return proxy_rules(ns) if mode == "iptables" else nft_table(ns)


def flush_everything(ns: str, mode: str) -> None:
    """Remove the proxy's rules as an administrator might."""
    if mode == "iptables":
        for table in ("nat", "filter"):
            in_netns(ns, "iptables", "-t", table, "-F")
            in_netns(ns, "iptables", "-t", table, "-X")
    else:
        in_netns(ns, "nft", "delete", "table", "ip", nftrules.TABLE)


def proxier_config(ns: str, mode: str = "iptables", **overrides: Any) -> ProxierConfig:
    base: dict[str, Any] = {"node_name": "n1", "netns": ns, "flush_check_period": 0.2, "min_sync_period": 0.05,
                            "mode": mode}
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
