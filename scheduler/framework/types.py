"""What plugins read: a pod's scheduling facts (PodInfo), a node's (NodeInfo), and the Snapshot of all nodes.

Everything a plugin needs per node is computed once, when an object arrives,
not once per scheduling decision: quantities are parsed, selectors compiled,
taints split by effect, and per-node counters (requested resources, host
ports, pods per owner and per label) kept up to date as pods come and go.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from api import labels, quantity
from api.pb import core_pb2, meta_pb2, storage_pb2
from api.pods import TERMINAL_PHASES

HOSTNAME_LABEL = "kubernetes.io/hostname"
ZONE_LABEL = "topology.kubernetes.io/zone"

# Scoring counts a pod that requests nothing as requesting this much (kube-scheduler's non-zero defaults),
# so best-effort pods still spread instead of piling onto one node.
DEFAULT_MILLI_CPU = 100
DEFAULT_MEMORY = 200 * 1024 * 1024


@functools.lru_cache(maxsize=4096)
def _milli(text: str) -> int:
    try:
        return quantity.milli(text)
    except quantity.QuantityError:
        return 0


@functools.lru_cache(maxsize=4096)
def _value(text: str) -> int:
    try:
        return quantity.value(text)
    except quantity.QuantityError:
        return 0


def container_requests(containers: Iterable[core_pb2.Container]) -> list[tuple[int, int, int]]:
    """(milli-cpu, memory bytes, ephemeral-storage bytes) requested by each container."""
    out = []
    for c in containers:
        r = c.resources.requests
        out.append((_milli(r["cpu"]) if "cpu" in r else 0,
                    _value(r["memory"]) if "memory" in r else 0,
                    _value(r["ephemeral-storage"]) if "ephemeral-storage" in r else 0))
    return out


def compute_pod_requests(spec: core_pb2.PodSpec) -> tuple[int, int, int]:
    """A pod's effective requests, as Kubernetes counts them: per resource, max(sum(containers), max(init))."""
    main = container_requests(spec.containers)
    init = container_requests(spec.init_containers)
    out = []
    for i in range(3):
        total = sum(r[i] for r in main)
        peak = max((r[i] for r in init), default=0)
        out.append(max(total, peak))
    return out[0], out[1], out[2]


def _nonzero_requests(spec: core_pb2.PodSpec) -> tuple[int, int]:
    """Requests for scoring: a container with no cpu (memory) request counts the default."""
    cpu = mem = 0
    for c in spec.containers:
        r = c.resources.requests
        cpu += _milli(r["cpu"]) if "cpu" in r else DEFAULT_MILLI_CPU
        mem += _value(r["memory"]) if "memory" in r else DEFAULT_MEMORY
    for c in spec.init_containers:
        r = c.resources.requests
        cpu = max(cpu, _milli(r["cpu"]) if "cpu" in r else 0)
        mem = max(mem, _value(r["memory"]) if "memory" in r else 0)
    return cpu, mem


_NODE_OPS = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!", "Gt": "gt", "Lt": "lt"}


@dataclass(frozen=True, slots=True)
class NodeSelectorTerm:
    """One term of a node selector: every expression on labels and every field expression must hold."""

    expressions: tuple[labels.Requirement, ...]
    fields: tuple[labels.Requirement, ...]
    valid: bool = True

    def matches(self, node_labels: Mapping[str, str], node_name: str) -> bool:
        if not self.valid or (not self.expressions and not self.fields):
            return False  # an empty term matches no node (Kubernetes' rule)
        for r in self.expressions:
            if not r.matches(node_labels):
                return False
        if self.fields:
            values = {"metadata.name": node_name}
            for r in self.fields:
                if not r.matches(values):
                    return False
        return True


_INTEGER = re.compile(r"[-+]?[0-9]+")


def compiles(op: str | None, key: str, values: Sequence[str]) -> bool:
    """Whether a node selector expression compiles to a label requirement, as Kubernetes' labels.NewRequirement
    decides: a valid key; In/NotIn with valid label values, Exists/DoesNotExist with none, Gt/Lt with one integer."""
    if op is None or labels.key_errors(key):
        return False
    if op in ("in", "notin"):
        return bool(values) and not any(labels.value_errors(v) for v in values)
    if op in ("exists", "!"):
        return not values
    return len(values) == 1 and _INTEGER.fullmatch(values[0]) is not None


def compile_term(term: core_pb2.NodeSelectorTerm) -> NodeSelectorTerm:
    """A term as the filter matches it; a term with an expression Kubernetes cannot compile (an invalid key or
    value, a wrong number of values) matches no node, so a pod that requires only such terms is unschedulable."""
    exprs, fields, valid = [], [], True
    for e in term.match_expressions:
        op = _NODE_OPS.get(e.operator)
        if not compiles(op, e.key, e.values):
            valid = False
            continue
        exprs.append(labels.Requirement(e.key, op, tuple(e.values)))  # type: ignore[arg-type]
    for e in term.match_fields:
        op = _NODE_OPS.get(e.operator)
        # Kubernetes' node field selector: metadata.name, In or NotIn, exactly one value.
        if e.key != "metadata.name" or op not in ("in", "notin") or len(e.values) != 1:
            valid = False
            continue
        fields.append(labels.Requirement(e.key, op, tuple(e.values)))
    return NodeSelectorTerm(tuple(exprs), tuple(fields), valid)


@dataclass(frozen=True, slots=True)
class PodAffinityTerm:
    selector: labels.Selector
    namespaces: frozenset[str]  # empty with all_namespaces False: never happens (filled with the pod's own)
    all_namespaces: bool
    topology_key: str
    # (key, value) when the selector is exactly one label pair: counted from NodeInfo.label_counts.
    pair: tuple[str, str] | None

    def matches(self, pod: PodInfo) -> bool:
        if not self.all_namespaces and pod.namespace not in self.namespaces:
            return False
        return self.selector.matches(pod.labels)


def _single_pair(sel: labels.Selector) -> tuple[str, str] | None:
    reqs = sel.requirements
    if not sel.nothing and len(reqs) == 1 and reqs[0].op == "=" and len(reqs[0].values) == 1:
        return reqs[0].key, reqs[0].values[0]
    return None


def compile_pod_affinity_term(term: core_pb2.PodAffinityTerm, namespace: str) -> PodAffinityTerm:
    sel = labels.from_label_selector(term.label_selector) if term.HasField("label_selector") else labels.NOTHING
    all_ns = term.HasField("namespace_selector") and not term.namespace_selector.match_labels \
        and not term.namespace_selector.match_expressions
    namespaces = frozenset(term.namespaces) or (frozenset() if term.HasField("namespace_selector")
                                                else frozenset((namespace,)))
    return PodAffinityTerm(sel, namespaces, all_ns, term.topology_key, _single_pair(sel))


@dataclass(frozen=True, slots=True)
class SpreadConstraint:
    max_skew: int
    topology_key: str
    hard: bool  # DoNotSchedule
    selector: labels.Selector
    pair: tuple[str, str] | None
    min_domains: int


def compile_spread(c: core_pb2.TopologySpreadConstraint, pod_labels: Mapping[str, str]) -> SpreadConstraint:
    sel = labels.from_label_selector(c.label_selector) if c.HasField("label_selector") else labels.NOTHING
    if c.match_label_keys and not sel.nothing:
        extra = tuple(labels.Requirement(k, "=", (pod_labels[k],)) for k in c.match_label_keys if k in pod_labels)
        sel = labels.Selector(sel.requirements + extra)
    return SpreadConstraint(max(1, c.max_skew), c.topology_key, c.when_unsatisfiable != "ScheduleAnyway", sel,
                            _single_pair(sel), c.min_domains if c.HasField("min_domains") else 1)


def owner_of(meta: meta_pb2.ObjectMeta) -> str:
    """The uid of the pod's controller (or first owner), '' for a bare pod."""
    refs = meta.owner_references
    for ref in refs:
        if ref.controller:
            return ref.uid or f"{ref.kind}/{ref.name}"
    if refs:
        return refs[0].uid or f"{refs[0].kind}/{refs[0].name}"
    return ""


class PodInfo:
    """A pod's scheduling facts, computed once per pod version."""

    __slots__ = ("affinity_terms", "anti_affinity_terms", "claims", "cpu", "created", "ephemeral", "key", "labels",
                 "memory", "name", "namespace", "node_name", "node_selector", "nominated_node", "nz_cpu", "nz_memory",
                 "owner", "pod", "ports", "preemption_policy", "preferred_terms", "priority", "required_terms",
                 "spread", "terminating", "tolerations", "uid")

    def __init__(self, pod: core_pb2.Pod) -> None:
        meta, spec = pod.metadata, pod.spec
        self.pod = pod
        self.namespace = meta.namespace
        self.name = meta.name
        self.key = f"{meta.namespace}/{meta.name}"
        self.uid = meta.uid
        self.labels: dict[str, str] = dict(meta.labels)
        self.priority = spec.priority if spec.HasField("priority") else 0
        self.created = meta.creation_timestamp.seconds + meta.creation_timestamp.nanos / 1e9
        self.node_name = spec.node_name
        self.nominated_node = pod.status.nominated_node_name
        self.terminating = meta.HasField("deletion_timestamp")
        self.preemption_policy = spec.preemption_policy if spec.HasField("preemption_policy") else \
            "PreemptLowerPriority"
        self.cpu, self.memory, self.ephemeral = compute_pod_requests(spec)
        self.nz_cpu, self.nz_memory = _nonzero_requests(spec)
        self.ports: tuple[tuple[str, str, int], ...] = tuple(
            (p.protocol or "TCP", p.host_ip if p.host_ip not in ("", "0.0.0.0") else "", p.host_port)
            for c in (*spec.init_containers, *spec.containers) for p in c.ports if p.host_port > 0)
        self.node_selector: dict[str, str] = dict(spec.node_selector)
        na = spec.affinity.node_affinity
        self.required_terms: tuple[NodeSelectorTerm, ...] | None = None
        if na.HasField("required_during_scheduling_ignored_during_execution"):
            self.required_terms = tuple(
                compile_term(t) for t in na.required_during_scheduling_ignored_during_execution.node_selector_terms)
        self.preferred_terms: tuple[tuple[int, NodeSelectorTerm], ...] = tuple(
            (p.weight, compile_term(p.preference)) for p in na.preferred_during_scheduling_ignored_during_execution
            if p.weight)
        self.tolerations: tuple[core_pb2.Toleration, ...] = tuple(spec.tolerations)
        ns = meta.namespace
        self.anti_affinity_terms: tuple[PodAffinityTerm, ...] = tuple(
            compile_pod_affinity_term(t, ns)
            for t in spec.affinity.pod_anti_affinity.required_during_scheduling_ignored_during_execution)
        self.affinity_terms: tuple[PodAffinityTerm, ...] = tuple(
            compile_pod_affinity_term(t, ns)
            for t in spec.affinity.pod_affinity.required_during_scheduling_ignored_during_execution)
        self.spread: tuple[SpreadConstraint, ...] = tuple(
            compile_spread(c, self.labels) for c in spec.topology_spread_constraints)
        self.owner = owner_of(meta)
        self.claims: tuple[str, ...] = tuple(v.persistent_volume_claim.claim_name for v in spec.volumes
                                             if v.HasField("persistent_volume_claim"))

    def __repr__(self) -> str:
        return f"PodInfo({self.key})"


def _allocatable(node: core_pb2.Node) -> dict[str, str]:
    # Kubernetes defaults allocatable to capacity when a node reports only capacity.
    return dict(node.status.allocatable) or dict(node.status.capacity)


def node_is_ready(node: core_pb2.Node) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in node.status.conditions)


@dataclass(frozen=True, slots=True)
class NodeFacts:
    """The parts of a Node that scheduling reads; two nodes with equal facts schedule alike."""

    labels: tuple[tuple[str, str], ...]
    alloc: tuple[int, int, int, int]  # milli-cpu, memory, ephemeral-storage, pods
    unschedulable: bool
    ready: bool
    taints: tuple[tuple[str, str, str], ...]  # key, value, effect

    @staticmethod
    def of(node: core_pb2.Node) -> NodeFacts:
        a = _allocatable(node)
        alloc = (_milli(a["cpu"]) if "cpu" in a else 0, _value(a["memory"]) if "memory" in a else 0,
                 _value(a["ephemeral-storage"]) if "ephemeral-storage" in a else 0,
                 _value(a["pods"]) if "pods" in a else 0)
        return NodeFacts(tuple(sorted(node.metadata.labels.items())), alloc, node.spec.unschedulable,
                         node_is_ready(node), tuple((t.key, t.value, t.effect) for t in node.spec.taints))


class NodeInfo:
    """One node and the pods on it (including pods assumed there but not yet bound)."""

    __slots__ = ("alloc_cpu", "alloc_ephemeral", "alloc_memory", "alloc_pods", "anti_affinity_pods", "facts",
                 "generation", "label_counts", "labels", "name", "node", "nz_cpu", "nz_memory", "owner_counts",
                 "pods", "ports", "prefer_taints", "ready", "req_cpu", "req_ephemeral", "req_memory", "taints",
                 "unschedulable", "zone")

    def __init__(self, name: str) -> None:
        self.name = name
        self.node: core_pb2.Node | None = None
        self.facts: NodeFacts | None = None
        self.labels: dict[str, str] = {}
        self.zone: str | None = None
        self.taints: tuple[core_pb2.Taint, ...] = ()  # NoSchedule and NoExecute
        self.prefer_taints: tuple[core_pb2.Taint, ...] = ()  # PreferNoSchedule
        self.unschedulable = False
        self.ready = False
        self.alloc_cpu = self.alloc_memory = self.alloc_ephemeral = self.alloc_pods = 0
        self.req_cpu = self.req_memory = self.req_ephemeral = 0
        self.nz_cpu = self.nz_memory = 0
        self.pods: dict[str, PodInfo] = {}
        self.ports: dict[tuple[str, int], dict[str, int]] = {}  # (protocol, port) -> {host ip: count}
        self.owner_counts: dict[str, int] = {}
        self.label_counts: dict[tuple[str, str, str], int] = {}  # (namespace, key, value) -> live pods
        self.anti_affinity_pods: dict[str, PodInfo] = {}
        self.generation = 0

    def set_node(self, node: core_pb2.Node, facts: NodeFacts | None = None) -> None:
        self.node = node
        self.facts = facts or NodeFacts.of(node)
        self.labels = dict(node.metadata.labels)
        self.zone = self.labels.get(ZONE_LABEL)
        self.taints = tuple(t for t in node.spec.taints if t.effect in ("NoSchedule", "NoExecute"))
        self.prefer_taints = tuple(t for t in node.spec.taints if t.effect == "PreferNoSchedule")
        self.unschedulable = self.facts.unschedulable
        self.ready = self.facts.ready
        self.alloc_cpu, self.alloc_memory, self.alloc_ephemeral, self.alloc_pods = self.facts.alloc
        self.generation += 1

    def add_pod(self, p: PodInfo) -> None:
        self.pods[p.key] = p
        self.req_cpu += p.cpu
        self.req_memory += p.memory
        self.req_ephemeral += p.ephemeral
        self.nz_cpu += p.nz_cpu
        self.nz_memory += p.nz_memory
        for proto, ip, port in p.ports:
            ips = self.ports.setdefault((proto, port), {})
            ips[ip] = ips.get(ip, 0) + 1
        if not p.terminating:
            if p.owner:
                self.owner_counts[p.owner] = self.owner_counts.get(p.owner, 0) + 1
            for k, v in p.labels.items():
                lk = (p.namespace, k, v)
                self.label_counts[lk] = self.label_counts.get(lk, 0) + 1
        if p.anti_affinity_terms:
            self.anti_affinity_pods[p.key] = p
        self.generation += 1

    def remove_pod(self, p: PodInfo) -> None:
        if self.pods.pop(p.key, None) is None:
            return
        self.req_cpu -= p.cpu
        self.req_memory -= p.memory
        self.req_ephemeral -= p.ephemeral
        self.nz_cpu -= p.nz_cpu
        self.nz_memory -= p.nz_memory
        for proto, ip, port in p.ports:
            ips = self.ports.get((proto, port))
            if ips is not None and ip in ips:
                ips[ip] -= 1
                if ips[ip] <= 0:
                    del ips[ip]
                if not ips:
                    del self.ports[(proto, port)]
        if not p.terminating:
            if p.owner:
                n = self.owner_counts.get(p.owner, 0) - 1
                if n > 0:
                    self.owner_counts[p.owner] = n
                else:
                    self.owner_counts.pop(p.owner, None)
            for k, v in p.labels.items():
                lk = (p.namespace, k, v)
                n = self.label_counts.get(lk, 0) - 1
                if n > 0:
                    self.label_counts[lk] = n
                else:
                    self.label_counts.pop(lk, None)
        self.anti_affinity_pods.pop(p.key, None)
        self.generation += 1

    def clone(self) -> NodeInfo:
        """A copy whose pod set can change without touching this one (preemption's what-if)."""
        c = NodeInfo(self.name)
        for attr in NodeInfo.__slots__:
            setattr(c, attr, getattr(self, attr))
        c.pods = dict(self.pods)
        c.ports = {k: dict(v) for k, v in self.ports.items()}
        c.owner_counts = dict(self.owner_counts)
        c.label_counts = dict(self.label_counts)
        c.anti_affinity_pods = dict(self.anti_affinity_pods)
        return c

    def count_matching(self, namespaces: frozenset[str] | None, selector: labels.Selector,
                       pair: tuple[str, str] | None) -> int:
        """Live (not terminating) pods here in `namespaces` (None: any) that match `selector`."""
        if pair is not None and namespaces is not None and len(namespaces) == 1:
            (ns,) = namespaces
            return self.label_counts.get((ns, pair[0], pair[1]), 0)
        n = 0
        for p in self.pods.values():
            if not p.terminating and (namespaces is None or p.namespace in namespaces) and \
                    selector.matches(p.labels):
                n += 1
        return n

    def __repr__(self) -> str:
        return f"NodeInfo({self.name}, pods={len(self.pods)})"


@dataclass
class VolumeState:
    """The claims, volumes and storage classes decisions read (live views of the scheduler's informers), and
    the claims the scheduler has promised to a node but not yet seen bound (claim key -> node)."""

    claims: Mapping[str, core_pb2.PersistentVolumeClaim] = field(default_factory=dict)  # namespace/name
    volumes: Mapping[str, core_pb2.PersistentVolume] = field(default_factory=dict)
    classes: Mapping[str, storage_pb2.StorageClass] = field(default_factory=dict)
    assumed: dict[str, str] = field(default_factory=dict)


@dataclass
class Snapshot:
    """The nodes a decision sees. `nodes` holds only nodes that exist (not pods' ghost nodes).

    The name sets say which nodes need a node-state check at all, so a filter
    with nothing to check on any node is skipped for the whole decision.
    """

    nodes: list[NodeInfo] = field(default_factory=list)
    infos: dict[str, NodeInfo] = field(default_factory=dict)
    # Pods nominated to a node by preemption: their resources are held there for pods of lower or equal priority.
    nominated: dict[str, dict[str, PodInfo]] = field(default_factory=dict)
    # Names of nodes holding pods with required anti-affinity (checked against every incoming pod).
    anti_affinity_nodes: set[str] = field(default_factory=set)
    cordoned: set[str] = field(default_factory=set)
    not_ready: set[str] = field(default_factory=set)
    tainted: set[str] = field(default_factory=set)  # NoSchedule or NoExecute taints
    prefer_tainted: set[str] = field(default_factory=set)  # PreferNoSchedule taints
    zoned: set[str] = field(default_factory=set)
    storage: VolumeState = field(default_factory=VolumeState)

    def nodes_with_anti_affinity_pods(self) -> Iterable[NodeInfo]:
        infos = self.infos
        return [infos[n] for n in self.anti_affinity_nodes if n in infos]

    def index_node(self, info: NodeInfo) -> None:
        """File a node (just added or changed) under the node-state sets; a removed node leaves them."""
        name, present = info.name, info.node is not None
        for names, flag in ((self.cordoned, info.unschedulable), (self.not_ready, not info.ready),
                            (self.tainted, bool(info.taints)), (self.prefer_tainted, bool(info.prefer_taints)),
                            (self.zoned, info.zone is not None)):
            if present and flag:
                names.add(name)
            else:
                names.discard(name)

    def add_node(self, node: core_pb2.Node) -> NodeInfo:
        info = self.infos.get(node.metadata.name)
        if info is None:
            info = self.infos[node.metadata.name] = NodeInfo(node.metadata.name)
        listed = info.node is not None
        info.set_node(node)
        if not listed:
            self.nodes.append(info)
        self.index_node(info)
        return info

    def place(self, pod: PodInfo, node: str) -> None:
        info = self.infos.get(node)
        if info is None:
            info = self.infos[node] = NodeInfo(node)
        info.add_pod(pod)
        if info.anti_affinity_pods:
            self.anti_affinity_nodes.add(node)


def compute_snapshot(nodes: Iterable[core_pb2.Node], pods: Iterable[core_pb2.Pod], *,
                     exclude: str = "", storage: VolumeState | None = None) -> Snapshot:
    """A snapshot from listed objects: bound, unfinished pods on their nodes; nominated pods held.

    `exclude` (namespace/name) leaves one pod out, to evaluate it as if it were not placed yet.
    """
    snap = Snapshot(storage=storage or VolumeState())
    for node in nodes:
        snap.add_node(node)
    for pod in pods:
        key = f"{pod.metadata.namespace}/{pod.metadata.name}"
        if key == exclude or pod.status.phase in TERMINAL_PHASES:
            continue
        if pod.spec.node_name:
            snap.place(PodInfo(pod), pod.spec.node_name)
        elif pod.status.nominated_node_name and not pod.metadata.HasField("deletion_timestamp"):
            snap.nominated.setdefault(pod.status.nominated_node_name, {})[key] = PodInfo(pod)
    return snap
