"""One informer per kind for the whole controller-manager, with the indexes controllers share."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from google.protobuf.message import Message

from api import kinds
from client.api import Client
from client.informer import Informer
from controllers.owners import controller_ref

NAMESPACE = "namespace"  # namespace -> objects in it
CONTROLLER = "controller"  # controller uid -> objects it controls
OWNER = "owner"  # any owner uid -> its dependents
ORPHAN = "orphan"  # namespace -> objects without a controller in it
NODE = "node"  # node name -> pods bound to it


def _namespace(obj: Message) -> Iterable[str]:
    return (obj.metadata.namespace,)  # type: ignore[attr-defined]


def _controller(obj: Message) -> Iterable[str]:
    ref = controller_ref(obj)
    return (ref.uid,) if ref is not None else ()


def _owners(obj: Message) -> Iterable[str]:
    return {r.uid for r in obj.metadata.owner_references}  # type: ignore[attr-defined]


def _orphan(obj: Message) -> Iterable[str]:
    return () if controller_ref(obj) is not None else (obj.metadata.namespace,)  # type: ignore[attr-defined]


def _node(obj: Message) -> Iterable[str]:
    node = obj.spec.node_name  # type: ignore[attr-defined]
    return (node,) if node else ()


class SharedInformers:
    """Controllers ask for informers while they are built; `run()` then starts every one of them."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self._informers: dict[tuple[str, str], Informer[Any]] = {}

    def get(self, kind: str, namespace: str = "") -> Informer[Any]:
        k = kinds.lookup(kind)
        key = (k.resource, namespace)
        informer = self._informers.get(key)
        if informer is None:
            informer = Informer(self.client, k.resource, namespace=namespace,
                                name=f"{k.resource}/{namespace}" if namespace else k.resource)
            if k.namespaced:
                informer.add_index(NAMESPACE, _namespace)
                informer.add_index(ORPHAN, _orphan)
            informer.add_index(CONTROLLER, _controller)
            informer.add_index(OWNER, _owners)
            if k.kind == "Pod":
                informer.add_index(NODE, _node)
            self._informers[key] = informer
        return informer

    def all(self) -> list[Informer[Any]]:
        return list(self._informers.values())

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            for informer in self._informers.values():
                tg.create_task(informer.run())

    async def wait_synced(self, *informers: Informer[Any]) -> None:
        for informer in informers or tuple(self._informers.values()):
            await informer.synced.wait()
