"""The speaker daemon: Services, Endpoints, Nodes and Leases in; ARP answers, Leases, status and Events out.

Every change (and every `resync` seconds) runs one sync: for each LoadBalancer
Service of ours, plan_announcer and plan_step say what this node does. Giving an
address up happens first and locally (stop answering), taking one over only after
this node has won the Service's Lease by compare-and-swap, so two live nodes never
answer for one address.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import structlog

from api import loadbalancer, timestamps
from api.errors import AlreadyExistsError, ApiError, ConflictError, NotFoundError
from api.pb import apps_pb2, core_pb2, meta_pb2
from client.api import Client
from client.events import EventRecorder
from client.informer import Informer, key_of
from speaker import plan
from speaker.arp import Responder

log = structlog.get_logger()


class RootNamespaceError(Exception):
    """The speaker was about to answer ARP in the machine's root network namespace."""


@dataclass
class SpeakerConfig:
    node_name: str
    node_ip: str  # the speaker answers on the interface that holds this address
    interface: str = ""  # or on this one
    resync: float = 1.0
    allow_root_netns: bool = False


def in_root_namespace() -> bool:
    """Whether this process runs in the machine's root network namespace (when unsure: yes)."""
    try:
        return os.stat("/proc/self/ns/net").st_ino == os.stat("/proc/1/ns/net").st_ino
    except OSError:
        pass
    mine = os.stat("/proc/self/ns/net")
    run = Path("/run/netns")
    named = [os.stat(p) for p in run.iterdir()] if run.is_dir() else []
    return not any((s.st_dev, s.st_ino) == (mine.st_dev, mine.st_ino) for s in named)


def interface_of(ip: str) -> str:
    """The interface of this namespace that holds address `ip`."""
    out = subprocess.run(["ip", "-j", "-4", "addr", "show"], capture_output=True, text=True, check=True,
                         timeout=10).stdout
    for link in json.loads(out or "[]"):
        if any(a.get("local") == ip for a in link.get("addr_info", [])):
            return str(link["ifname"])
    raise LookupError(f"no interface in this network namespace has the address {ip}")


def check(config: SpeakerConfig) -> str:
    """The interface to answer on; refuses the root network namespace unless allowed."""
    if in_root_namespace() and not config.allow_root_netns:
        raise RootNamespaceError("refusing to answer ARP in the machine's root network namespace: the speaker runs "
                                 "inside a node's network namespace (pass --allow-root-netns on a machine that is "
                                 "itself the node)")
    return config.interface or interface_of(config.node_ip)


def _ready(node: core_pb2.Node) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in node.status.conditions)


def _endpoint_nodes(ep: core_pb2.Endpoints | None) -> frozenset[str]:
    if ep is None:
        return frozenset()
    return frozenset(a.node_name for s in ep.subsets for a in s.addresses if a.node_name)


class Speaker:
    def __init__(self, client: Client, config: SpeakerConfig, interface: str) -> None:
        self.client = client
        self.config = config
        self.me = config.node_name
        self.responder = Responder(interface)
        self.recorder = EventRecorder(client, "speaker", host=self.me)
        self.services: Informer[core_pb2.Service] = Informer(client, core_pb2.Service, name="services")
        self.endpoints: Informer[core_pb2.Endpoints] = Informer(client, core_pb2.Endpoints, name="endpoints")
        self.nodes: Informer[core_pb2.Node] = Informer(client, core_pb2.Node, name="nodes")
        self.leases: Informer[apps_pb2.Lease] = Informer(client, apps_pb2.Lease, name="leases")
        self._changed = asyncio.Event()
        # Leases this node has just taken, by Service: the version it replaced ("" when it made the Lease).
        # While the informer still shows that version, the Lease is this node's.
        self._taken: dict[str, str] = {}
        for inf in (self.services, self.endpoints, self.nodes, self.leases):
            inf.add_handlers(lambda *_: self._changed.set(), lambda *_: self._changed.set(),
                             lambda *_: self._changed.set())

    async def run(self) -> None:
        log.info("speaker_started", interface=self.responder.interface, mac=self.responder.mac.hex(":"))
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.responder.run())
            tg.create_task(self.recorder.run())
            for inf in (self.services, self.endpoints, self.nodes, self.leases):
                tg.create_task(inf.run())
            for inf in (self.services, self.endpoints, self.nodes, self.leases):
                await inf.wait_synced()
            while True:
                self._changed.clear()
                try:
                    await self.sync()
                except ApiError as e:
                    log.warning("sync_failed", error=e.message)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.config.resync):
                        await self._changed.wait()

    async def sync(self) -> None:
        ready = {n.metadata.name for n in self.nodes.list() if _ready(n)}
        keep: set[str] = set()
        work: list[tuple[plan.Step, core_pb2.Service, apps_pb2.Lease | None, str]] = []
        ours = set()
        for svc in self.services.list():
            ip = loadbalancer.allocated_ip(svc)
            if not ip:
                continue
            ns, name = svc.metadata.namespace, svc.metadata.name
            ours.add((ns, loadbalancer.lease_name(name)))
            view = plan.LbService(key_of(svc), ip, svc.spec.external_traffic_policy == "Local",
                                  _endpoint_nodes(self.endpoints.get_named(ns, name)))
            lease = self.leases.get_named(ns, loadbalancer.lease_name(name))
            holder = lease.spec.holder_identity if lease is not None else ""
            seen = lease.metadata.resource_version if lease is not None else ""
            if self._taken.get(view.key) == seen:
                holder = self.me  # the informer has not seen this node's write yet
            else:
                self._taken.pop(view.key, None)
            chosen = plan.plan_announcer(view, ready, holder)
            step = plan.plan_step(self.me, chosen, holder, holder_ready=holder in ready)
            if step is plan.Step.ANNOUNCE:
                keep.add(ip)
            work.append((step, svc, lease, chosen))
        # Stop answering first: what this node gives up is given up before anything is written. What it
        # holds it answers for (again, after a restart: with gratuitous ARP).
        self.responder.set_announced(keep)
        for step, svc, lease, chosen in work:
            if step is plan.Step.ANNOUNCE:
                await self._report(svc)
            elif step is plan.Step.TAKE:
                if await self._take(svc, lease):
                    self._taken[key_of(svc)] = lease.metadata.resource_version if lease is not None else ""
                    self.responder.set_announced(self.responder.announced | {loadbalancer.allocated_ip(svc)})
                    await self._report(svc)
            elif step is plan.Step.RELEASE and lease is not None:
                await self._release(svc, lease, chosen)
        # Leases this node holds for Services that are gone or no longer ours.
        for lease in self.leases.list():
            meta = lease.metadata
            if (meta.name.startswith(loadbalancer.LEASE_PREFIX) and lease.spec.holder_identity == self.me
                    and (meta.namespace, meta.name) not in ours):
                with contextlib.suppress(NotFoundError, ConflictError):
                    await self.client.delete(apps_pb2.Lease, meta.name, meta.namespace,
                                             resource_version=meta.resource_version)
                    log.info("lease_deleted", lease=f"{meta.namespace}/{meta.name}")

    async def _take(self, svc: core_pb2.Service, lease: apps_pb2.Lease | None) -> bool:
        ns, name = svc.metadata.namespace, svc.metadata.name
        previous = lease.spec.holder_identity if lease is not None else ""
        new = apps_pb2.Lease()
        if lease is not None:
            new.CopyFrom(lease)
        else:
            new.metadata.name = loadbalancer.lease_name(name)
            new.metadata.namespace = ns
            new.metadata.owner_references.append(meta_pb2.OwnerReference(
                api_version="v1", kind="Service", name=name, uid=svc.metadata.uid))
        now = timestamps.timestamp()
        new.spec.holder_identity = self.me
        new.spec.acquire_time.CopyFrom(now)
        new.spec.renew_time.CopyFrom(now)
        new.spec.lease_transitions = new.spec.lease_transitions + 1 if lease is not None else 0
        try:
            if lease is None:
                await self.client.create(new)
            else:
                await self.client.update(new)
        except (AlreadyExistsError, ConflictError, NotFoundError):
            return False  # someone else moved first: the next sync sees it
        ip = loadbalancer.allocated_ip(svc)
        log.info("address_taken", service=key_of(svc), ip=ip, previous=previous)
        message = f'announcing {ip} from node "{self.me}"' + (f' (taken over from "{previous}")' if previous else "")
        self.recorder.event(svc, "Normal", "NodeAssigned", message)
        return True

    async def _release(self, svc: core_pb2.Service, lease: apps_pb2.Lease, chosen: str) -> None:
        new = apps_pb2.Lease()
        new.CopyFrom(lease)
        new.spec.holder_identity = ""
        new.spec.renew_time.CopyFrom(timestamps.timestamp())
        with contextlib.suppress(ConflictError, NotFoundError):
            await self.client.update(new)
            log.info("address_released", service=key_of(svc), ip=loadbalancer.allocated_ip(svc), next=chosen)
            if not chosen:
                await self._set_ingress(svc, "")

    async def _report(self, svc: core_pb2.Service) -> None:
        """EXTERNAL-IP shows the address once this node answers for it."""
        await self._set_ingress(svc, loadbalancer.allocated_ip(svc))

    async def _set_ingress(self, svc: core_pb2.Service, ip: str) -> None:
        have = [i.ip for i in svc.status.load_balancer.ingress]
        if have == ([ip] if ip else []):
            return
        new = core_pb2.Service()
        new.CopyFrom(svc)
        new.status.load_balancer.ClearField("ingress")
        if ip:
            new.status.load_balancer.ingress.add(ip=ip)
        with contextlib.suppress(ConflictError, NotFoundError):
            await self.client.update_status(new)
