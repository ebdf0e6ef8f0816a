"""Services: cluster IPs, NodePorts and load-balancer addresses, claimed in storage with the Service.

Each claim is a key (`/registry/ranges/...`, see apiserver.allocator) created in the same
commit as the Service and deleted with it, so two apiservers never hand out one value.
Values this server picked but has not written yet are reserved in memory meanwhile.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from google.protobuf.message import Message

from api import kinds, loadbalancer, validation
from api.errors import ApiError, ConflictError, FieldError, InvalidError
from api.pb import core_pb2
from apiserver import allocator
from apiserver.rules.strategy import Config, Strategy
from apiserver.storage.interface import Create, Delete, Op


@dataclass
class _Allocations:
    ips: set[str] = field(default_factory=set)
    ports: set[int] = field(default_factory=set)
    lb: set[str] = field(default_factory=set)


class Rules(Strategy):
    kind = "Service"
    allocates = True

    def __init__(self, config: Config, ctx: object = None) -> None:
        super().__init__(config, ctx)
        self.ranges = allocator.Ranges.parse(config.service_cidr, config.node_port_range, config.lb_pool)
        self._rng = random.Random()
        self._inflight = _Allocations()

    def prepare_for_update(self, new: Message, old: Message) -> None:
        super().prepare_for_update(new, old)
        # A traffic policy or health-check port the update only carried over from the stored Service goes
        # when the Service no longer takes one (Kubernetes' dropTypeDependentFields).
        n, o = new.spec, old.spec  # type: ignore[attr-defined]
        if n.external_traffic_policy and n.external_traffic_policy == o.external_traffic_policy \
                and not validation.externally_accessible(new):  # type: ignore[arg-type]
            n.external_traffic_policy = ""
        if n.health_check_node_port and n.health_check_node_port == o.health_check_node_port \
                and not allocator.needs_health_check_port(new):  # type: ignore[arg-type]
            n.health_check_node_port = 0

    async def before_allocate(self) -> None:
        await self.ctx.sync()  # allocation picks from the cache: it must hold this server's Services

    def allocate(self, new: Message, old: Message | None) -> list[Op]:
        return self._allocate(new, old)  # type: ignore[arg-type]

    def release(self, ops: list[Op]) -> None:
        self._release_inflight(ops)

    def claims(self, obj: Message) -> set[str]:
        return allocator.claims(obj)  # type: ignore[arg-type]

    def claim_taken(self, key: str) -> ApiError:
        return ConflictError(f"{key.removeprefix(allocator.RANGES)} is already allocated; retry")

    def _taken(self) -> _Allocations:
        taken = _Allocations(set(self._inflight.ips), set(self._inflight.ports), set(self._inflight.lb))
        for entry in self.ctx.cache.store(kinds.lookup(self.kind)).objects.values():
            svc: core_pb2.Service = entry.obj  # type: ignore[assignment]
            if svc.spec.cluster_ip and svc.spec.cluster_ip != "None":
                taken.ips.add(svc.spec.cluster_ip)
            taken.ports.update(p.node_port for p in svc.spec.ports if p.node_port)
            if loadbalancer.allocated_ip(svc):
                taken.lb.add(loadbalancer.allocated_ip(svc))
            if svc.spec.health_check_node_port:
                taken.ports.add(svc.spec.health_check_node_port)
        return taken

    def _allocate(self, svc: core_pb2.Service, old: core_pb2.Service | None) -> list[Op]:
        """Fill in addresses and ports; return the range keys to claim and release."""
        errs = allocator.check_requested(svc, self.ranges)
        if errs:
            raise InvalidError(errs, prefix=f'Service "{svc.metadata.name}" is invalid: ')
        taken = self._taken()
        spec = svc.spec
        if spec.type == "ExternalName":
            spec.cluster_ip = ""
            del spec.cluster_ips[:]
        elif not spec.cluster_ip:
            spec.cluster_ip = allocator.pick_ip(self.ranges.service_cidr, taken.ips, self._rng)
        if spec.cluster_ip and not spec.cluster_ips:
            spec.cluster_ips.append(spec.cluster_ip)
        if spec.cluster_ip and spec.cluster_ip != "None" and not spec.ip_families:
            spec.ip_families.append("IPv4")
            spec.ip_family_policy = "SingleStack"
        if allocator.needs_node_ports(svc):
            for p in spec.ports:
                if not p.node_port:
                    p.node_port = allocator.pick_port(*self.ranges.node_ports, taken.ports, self._rng)
                    taken.ports.add(p.node_port)
        else:
            for p in spec.ports:
                p.node_port = 0
        if allocator.needs_health_check_port(svc):
            if not spec.health_check_node_port:
                spec.health_check_node_port = allocator.pick_port(*self.ranges.node_ports, taken.ports, self._rng)
                taken.ports.add(spec.health_check_node_port)
        else:
            spec.health_check_node_port = 0
        self._allocate_lb(svc, old, taken)
        new_claims = allocator.claims(svc)
        old_claims = allocator.claims(old) if old is not None else set()
        for key in new_claims - old_claims:
            self._note_inflight(key, add=True)
        owner = f"{svc.metadata.namespace}/{svc.metadata.name}".encode()
        ops: list[Op] = [Create(k, owner) for k in sorted(new_claims - old_claims)]
        ops += [Delete(k) for k in sorted(old_claims - new_claims)]
        return ops

    def _allocate_lb(self, svc: core_pb2.Service, old: core_pb2.Service | None, taken: _Allocations) -> None:
        """The load-balancer address, kept in a server-owned annotation; the announcing node fills the status."""
        annotations = svc.metadata.annotations
        given = annotations.get(loadbalancer.ALLOCATED_IP, "")
        had = loadbalancer.allocated_ip(old) if old is not None else ""
        if given and given != had:
            raise InvalidError([FieldError(f"metadata.annotations[{loadbalancer.ALLOCATED_IP}]", "Forbidden",
                                           "set by the apiserver from the load-balancer pool", given)])
        if not loadbalancer.is_ours(svc) or self.ranges.lb_pool is None:
            annotations.pop(loadbalancer.ALLOCATED_IP, None)
            if svc.spec.type != "LoadBalancer" or had:
                svc.status.ClearField("load_balancer")  # released: nobody announces it any more
            return
        wanted = svc.spec.load_balancer_ip
        ip = had if had and (not wanted or wanted == had) else ""
        if not ip:
            if wanted and wanted in taken.lb:
                raise InvalidError([FieldError("spec.loadBalancerIP", "Invalid value", "already allocated", wanted)])
            ip = wanted or self.ranges.lb_pool.pick(taken.lb, self._rng)
        annotations[loadbalancer.ALLOCATED_IP] = ip
        if ip != had:
            svc.status.ClearField("load_balancer")

    def validate_status_update(self, new: Message, old: Message) -> list[FieldError]:
        """Only the allocated address may be reported as announced."""
        svc: core_pb2.Service = new  # type: ignore[assignment]
        if not loadbalancer.is_ours(svc):
            return []
        ip = loadbalancer.allocated_ip(svc)
        return [FieldError(f"status.loadBalancer.ingress[{i}].ip", "Invalid value",
                           f"not the Service's allocated address {ip or '(none)'}", ing.ip)
                for i, ing in enumerate(svc.status.load_balancer.ingress) if ing.ip != ip]

    def _note_inflight(self, key: str, *, add: bool) -> None:
        tail = key.removeprefix(allocator.RANGES)
        section, _, value = tail.partition("/")
        target: set = {"serviceips": self._inflight.ips, "nodeports": self._inflight.ports,
                       "lbips": self._inflight.lb}[section]
        item: object = int(value.rsplit("/", 1)[-1]) if section == "nodeports" else value
        if add:
            target.add(item)
        else:
            target.discard(item)

    def _release_inflight(self, ops: list[Op]) -> None:
        for op in ops:
            if isinstance(op, Create):
                self._note_inflight(op.key, add=False)
