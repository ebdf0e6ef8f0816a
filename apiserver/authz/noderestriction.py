"""NodeRestriction admission: what a kubelet may write into the objects the node authorizer lets it write.

A node creates only mirror pods (annotated `kubernetes.io/config.mirror`) bound to itself, never sets or
changes labels under `node-restriction.kubernetes.io/` on its Node (administrators use them to steer
workloads away from nodes that could lie about themselves), and never changes its Node's taints once it is
registered.
"""

from __future__ import annotations

from typing import ClassVar

from api.errors import ForbiddenError
from api.pb import core_pb2
from apiserver.admission import CREATE, UPDATE, Attributes
from apiserver.authz.node import node_of

MIRROR = "kubernetes.io/config.mirror"
RESTRICTED_LABELS = "node-restriction.kubernetes.io/"


def check_pod_create(node: str, pod: core_pb2.Pod) -> None:
    if MIRROR not in pod.metadata.annotations:
        raise ForbiddenError(f'pod does not have "{MIRROR}" annotation, node "{node}" can only create mirror pods')
    if pod.spec.node_name != node:
        raise ForbiddenError(f'node "{node}" can only create pods with spec.nodeName set to itself')


def _restricted(labels: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in labels.items() if k.startswith(RESTRICTED_LABELS)}


def check_node_write(node: str, new: core_pb2.Node, old: core_pb2.Node | None) -> None:
    before = _restricted(dict(old.metadata.labels)) if old is not None else {}
    after = _restricted(dict(new.metadata.labels))
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    if changed:
        raise ForbiddenError(f'node "{node}" is not allowed to modify labels: {", ".join(changed)}')
    if old is not None and list(new.spec.taints) != list(old.spec.taints):
        raise ForbiddenError(f'node "{node}" is not allowed to modify taints')


class NodeRestriction:
    """The admission plugin: applies only to kubelets' own requests."""

    name: ClassVar[str] = "NodeRestriction"
    kinds: ClassVar[frozenset[str] | None] = frozenset({"Pod", "Node"})
    operations = frozenset({CREATE, UPDATE})

    async def admit(self, a: Attributes) -> None:
        """Nothing to change: NodeRestriction only refuses."""

    async def validate(self, a: Attributes) -> None:
        node = node_of(a.user) if a.user is not None else None
        if node is None:
            return
        if isinstance(a.obj, core_pb2.Pod) and a.operation == CREATE:
            check_pod_create(node, a.obj)
        elif isinstance(a.obj, core_pb2.Node):
            check_node_write(node, a.obj, a.old)  # type: ignore[arg-type]
