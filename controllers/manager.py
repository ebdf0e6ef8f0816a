"""The controller-manager: every controller in one process, leader-elected through a Lease.

Only the holder of the `kube-controller-manager` Lease in kube-system runs
controllers. Each leadership term starts from scratch (fresh informers, empty
expectations), so a process that lost the lease and won it back never acts on
what it remembered from before.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import structlog

from client.api import Client
from client.config import ClientConfig
from client.leader import LeaderElector
from controllers.base import QueueController
from controllers.clusterroleaggregation.controller import ClusterRoleAggregationController
from controllers.cronjob.controller import CronJobController
from controllers.daemonset.controller import DaemonSetController
from controllers.deployment.controller import DeploymentController
from controllers.disruption.controller import DisruptionController
from controllers.endpoints.controller import EndpointsController
from controllers.endpointslice.controller import EndpointSliceController
from controllers.gc.controller import GarbageCollector
from controllers.gc.namespace import NamespaceController
from controllers.gc.pods import PodGarbageCollector
from controllers.informers import SharedInformers
from controllers.job.controller import JobController
from controllers.nodelifecycle.controller import DEFAULT_GRACE, DEFAULT_MONITOR_PERIOD, NodeLifecycleController
from controllers.nodelifecycle.plan import EvictionRates
from controllers.nodelifecycle.taintmanager import TaintManager
from controllers.replicaset.controller import ReplicaSetController
from controllers.statefulset.controller import StatefulSetController
from controllers.volume.controller import PersistentVolumeController
from controllers.volume.provisioner import LocalPathProvisioner

log = structlog.get_logger()

LEASE_NAME = "kube-controller-manager"
LEASE_NAMESPACE = "kube-system"
CONTROLLERS = ("replicaset", "deployment", "endpoints", "endpointslice", "nodelifecycle", "garbagecollector",
               "namespace", "persistentvolume", "job", "cronjob", "daemonset", "statefulset", "disruption",
               "clusterrole-aggregation")


def select_controllers(spec: str) -> tuple[str, ...]:
    """Kubernetes' --controllers syntax: `*` for all, names to add, `-name` to leave one out."""
    parts = [p.strip() for p in spec.split(",") if p.strip()] or ["*"]
    chosen: list[str] = []
    for p in parts:
        name = p.lstrip("-")
        if name != "*" and name not in CONTROLLERS:
            raise ValueError(f"unknown controller {name!r}; known: {', '.join(CONTROLLERS)}")
    if "*" in parts:
        chosen = list(CONTROLLERS)
    chosen += [p for p in parts if p not in ("*",) and not p.startswith("-") and p not in chosen]
    return tuple(c for c in CONTROLLERS if c in chosen and f"-{c}" not in parts)


def default_identity() -> str:
    return f"{socket.gethostname()}_{os.getpid()}_{uuid.uuid4().hex[:6]}"


@dataclass
class Config:
    client: ClientConfig = field(default_factory=ClientConfig)
    controllers: tuple[str, ...] = CONTROLLERS
    node_monitor_grace_period: float = DEFAULT_GRACE
    node_monitor_period: float = DEFAULT_MONITOR_PERIOD
    eviction_rates: EvictionRates = field(default_factory=EvictionRates)
    leader_elect: bool = True
    lease_duration: float = 4.0
    renew_interval: float = 1.0
    identity: str = field(default_factory=default_identity)
    replicaset_workers: int = 4
    deployment_workers: int = 2
    endpoints_workers: int = 4
    endpointslice_max: int = 100  # endpoints per EndpointSlice
    gc_workers: int = 4
    eviction_workers: int = 16
    job_workers: int = 4
    job_backoff: float = 10.0  # the first backoff after a Job's pod failed; doubles per failure


class ControllerManager:
    def __init__(self, config: Config, *, client: Client | None = None) -> None:
        self.config = config
        self._client = client
        self.controllers: dict[str, QueueController] = {}
        self.informers: SharedInformers | None = None
        self.leading = asyncio.Event()
        self.elector: LeaderElector | None = None

    async def run(self) -> None:
        # Its informers' watches (one per kind the controllers read) go over one WatchMany stream.
        client = self._client or Client(self.config.client, multiplex_watches=True)
        try:
            if self.config.leader_elect:
                self.elector = LeaderElector(client, name=LEASE_NAME, namespace=LEASE_NAMESPACE,
                                             identity=self.config.identity,
                                             lease_duration=self.config.lease_duration,
                                             renew_interval=self.config.renew_interval)
                await self.elector.run(lambda: self._lead(client))
            else:
                await self._lead(client)
        finally:
            if self._client is None:
                await client.close()

    def _build(self, client: Client, informers: SharedInformers) -> dict[str, QueueController]:
        c = self.config
        makers: dict[str, Callable[[], Sequence[tuple[str, QueueController]]]] = {
            "replicaset": lambda: [("replicaset", ReplicaSetController(client, informers,
                                                                       workers=c.replicaset_workers))],
            "deployment": lambda: [("deployment", DeploymentController(client, informers,
                                                                       workers=c.deployment_workers))],
            "endpoints": lambda: [("endpoints", EndpointsController(client, informers, workers=c.endpoints_workers))],
            "endpointslice": lambda: [("endpointslice", EndpointSliceController(
                client, informers, workers=c.endpoints_workers, max_endpoints=c.endpointslice_max))],
            "nodelifecycle": lambda: [
                ("nodelifecycle", NodeLifecycleController(client, informers, grace=c.node_monitor_grace_period,
                                                          monitor_period=c.node_monitor_period,
                                                          rates=c.eviction_rates)),
                ("taint-eviction", TaintManager(client, informers, workers=c.eviction_workers)),
            ],
            "garbagecollector": lambda: [
                ("garbagecollector", GarbageCollector(client, informers, workers=c.gc_workers)),
                ("podgc", PodGarbageCollector(client, informers)),
            ],
            "namespace": lambda: [("namespace", NamespaceController(client, informers))],
            "persistentvolume": lambda: [
                ("persistentvolume-binder", PersistentVolumeController(client, informers)),
                ("local-path-provisioner", LocalPathProvisioner(client, informers)),
            ],
            "job": lambda: [("job", JobController(client, informers, workers=c.job_workers,
                                                  backoff_base=c.job_backoff))],
            "cronjob": lambda: [("cronjob", CronJobController(client, informers))],
            "daemonset": lambda: [("daemonset", DaemonSetController(client, informers))],
            "statefulset": lambda: [("statefulset", StatefulSetController(client, informers))],
            "disruption": lambda: [("disruption", DisruptionController(client, informers))],
            "clusterrole-aggregation": lambda: [
                ("clusterrole-aggregation", ClusterRoleAggregationController(client, informers))],
        }
        out: dict[str, QueueController] = {}
        for name in c.controllers:
            out.update(makers[name]())
        return out

    async def _lead(self, client: Client) -> None:
        informers = SharedInformers(client)
        controllers = self._build(client, informers)
        self.informers, self.controllers = informers, controllers
        log.info("controllers_started", controllers=list(controllers), identity=self.config.identity)
        self.leading.set()
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(informers.run())
                for controller in controllers.values():
                    tg.create_task(controller.run())
        finally:
            self.leading.clear()
            log.info("controllers_stopped", identity=self.config.identity)
