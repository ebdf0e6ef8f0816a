"""The machine side of the CLI: each component's entry point, and the local cluster that runs them.

Each daemon is a subcommand that parses flags into its component's config and
runs until SIGTERM (serve). These modules may import the components; the
user commands (cli/ outside this package) may not: they speak to the
apiserver through client/ only.

apiserver          `kubelite apiserver`
scheduler          `kubelite scheduler`, and `explain`, which runs the scheduler's framework in-process
controllermanager  `kubelite controller-manager`
kubelet            `kubelite kubelet`
hollow             `kubelite hollow-nodes` (fake-runtime kubelets for benchmarks)
proxy              `kubelite proxy`
speaker            `kubelite speaker` (answers ARP for the LoadBalancer addresses its node announces)
dns                `kubelite dns`
ingress            `kubelite ingress` (the ingress controller, nginx in the node's namespace)
lab                `kubelite up`, `down`, `status`, `bootstrap` (local clusters and VMs)
certs              `kubelite certs check-expiration|renew` (a local cluster's or this machine's certificates)
images             `kubelite images build|load` (into a local cluster's containerd), `kubelite registry`
chaos              `kubelite chaos ...` (faults on a local cluster)
vm                 `kubelite vm box|up|down|exec|ssh|vagrant` (a VM lab: libvirt and Vagrant in their own namespace)
secrets            `kubelite secrets rotate-key` (a new encryption key for Secrets, every Secret rewritten)
supervise          `kubelite supervise`: a local cluster's watchdog, restarting daemons that die
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
from collections.abc import Coroutine
from typing import Any

import uvloop


def serve(main: Coroutine[Any, Any, None]) -> None:
    """Run a daemon's `run()` until SIGTERM or SIGINT, then let its cleanup run."""

    async def guarded() -> None:
        task = asyncio.ensure_future(main)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await task

    # What a daemon made to start (modules, descriptors, config) lives as long as it does: frozen, the
    # collector no longer walks it. And a collection waits for 10,000 new objects rather than 700. Over a
    # bench/controllers.py run the hollow nodes spent 1.8-2.6 s collecting, the apiserver 0.7-1.1 s;
    # with this, 0.35-0.45 s and 0.12 s.
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)
    # The same asyncio, on libuv: about 10% less CPU per pod in every daemon (bench/controllers.py).
    uvloop.run(guarded())
