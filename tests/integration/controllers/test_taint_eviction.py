"""A NoExecute taint added with `kubelite taint node`: the apiserver stamps timeAdded, and tolerationSeconds count from
it, even across a controller-manager restart."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from typing import Any

from api.pb import core_pb2
from api.timestamps import seconds
from client.api import Client

from .conftest import KUBELITE_ENV, KUBELITE_PATH, Running, start_manager

TOLERATIONS: dict[str, list[dict[str, Any]]] = {
    "plain": [],
    "five": [{"key": "dedicated", "operator": "Exists", "effect": "NoExecute", "toleration_seconds": 5}],
    "forever": [{"key": "dedicated", "operator": "Exists", "effect": "NoExecute"}],
}


async def kubelite(address: str, *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(KUBELITE_PATH, *args, "--server", address, env=KUBELITE_ENV,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode(), err.decode()


async def setup_pods(client: Client) -> None:
    await client.create(core_pb2.Node(metadata={"name": "n1"}))
    for name, tolerations in TOLERATIONS.items():
        pod = core_pb2.Pod(metadata={"name": name, "namespace": "default"},
                           spec={"node_name": "n1", "containers": [{"name": "c", "image": "busybox"}],
                                 "tolerations": tolerations})
        await client.create(pod)


async def eviction_times(client: Client, names: list[str], limit: float) -> dict[str, float]:
    """The wall-clock time at which each pod was first seen marked for deletion (polling until `limit`)."""
    seen: dict[str, float] = {}
    while time.time() < limit and len(seen) < len(names):
        for name in names:
            if name not in seen and (await client.get("pods", name, "default")).metadata.HasField("deletion_timestamp"):
                seen[name] = time.time()
        await asyncio.sleep(0.05)
    return seen


async def test_kubelite_taint_evicts_after_toleration_seconds(client: Client, apiserver: Any,
                                                              running: Running) -> None:
    """`kubelite taint node n1 dedicated=x:NoExecute`: the stored taint carries timeAdded (shown by `get -o json`),
    an untolerating pod goes at once, a pod tolerating it for 5 s goes 5-7 s after it was added, a pod tolerating
    it without a limit stays."""
    await start_manager(running, apiserver.address)
    await setup_pods(client)
    before = time.time()
    code, out, err = await kubelite(apiserver.address, "taint", "node", "n1", "dedicated=x:NoExecute")
    after = time.time()
    assert (code, out) == (0, "node/n1 tainted\n"), err

    node = await client.get("nodes", "n1", "")
    assert [(t.key, t.effect) for t in node.spec.taints] == [("dedicated", "NoExecute")]
    added = seconds(node.spec.taints[0].time_added)
    assert before <= added <= after
    code, out, _ = await kubelite(apiserver.address, "get", "node", "n1", "-o", "json")
    printed = json.loads(out)["spec"]["taints"][0]["timeAdded"]
    assert abs(dt.datetime.fromisoformat(printed).timestamp() - added) < 1e-3

    gone = await eviction_times(client, ["plain", "five"], added + 9)
    assert gone.get("plain", 99) - added < 1.5, gone
    assert 5.0 <= gone.get("five", 99) - added <= 7.0, (gone, added)
    assert not (await client.get("pods", "forever", "default")).metadata.HasField("deletion_timestamp")


async def test_toleration_counts_from_time_added_across_a_manager_restart(client: Client, apiserver: Any,
                                                                          running: Running) -> None:
    """A controller-manager started 3 s after the taint was added still evicts the 5 s pod 5-7 s after the add:
    the clock is the stored timeAdded, not when the new taint manager first saw the taint."""
    first = Running()
    try:
        await start_manager(first, apiserver.address)
        await setup_pods(client)
        before = time.time()
        code, _, err = await kubelite(apiserver.address, "taint", "node", "n1", "dedicated=x:NoExecute")
        after = time.time()
        assert code == 0, err
    finally:
        await first.stop()
    await asyncio.sleep(max(0.0, after + 3 - time.time()))
    await start_manager(running, apiserver.address)
    gone = await eviction_times(client, ["five"], after + 10)
    # The taint was added between `before` and `after`.
    assert gone.get("five", 99) - before >= 5.0 and gone.get("five", 99) - after <= 7.0, (gone, before, after)
