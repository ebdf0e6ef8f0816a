"""The node's side of local-path volumes: make their directories, and remove them when the volume goes.

The local-path provisioner (controller-manager) makes the PersistentVolume;
only this node may touch its disk. The kubelet watches the volumes labelled
with its node (`kubelite.io/local-path-node=<node>`): a new one gets its
directory (world-writable, like an emptyDir); one being deleted (reclaim
policy Delete, after its claim went) has its directory removed, then its
`kubelite.io/local-path` finalizer lifted, so the volume object disappears
only once its data has. A path outside this node's local-path root is never
touched.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

import structlog

from api import volumes
from api.errors import ApiError, NotFoundError
from api.pb import core_pb2
from client.api import Client
from client.informer import Informer
from client.retry import cached_first, retry_on_conflict

log = structlog.get_logger(__name__)


def volume_path(pv: core_pb2.PersistentVolume, root: Path) -> Path | None:
    """The volume's directory if it lies directly under `root` (None for anything else)."""
    text = pv.spec.host_path.path or pv.spec.local.path
    if not text:
        return None
    path = Path(os.path.normpath(text))
    return path if path.parent == Path(os.path.normpath(root)) and path.name not in ("", ".", "..") else None


def plan_local_path(pv: core_pb2.PersistentVolume, root: Path) -> str:
    """What the node does for one of its local-path volumes: "create", "remove" or "" (nothing)."""
    if volume_path(pv, root) is None:
        return ""
    if pv.metadata.HasField("deletion_timestamp"):
        return "remove" if volumes.LOCAL_PATH_FINALIZER in pv.metadata.finalizers else ""
    return "create"


class LocalPathVolumes:
    """`run()` watches this node's local-path volumes until cancelled."""

    def __init__(self, client: Client, node: str, root: Path) -> None:
        self.client = client
        self.root = Path(root)
        self.informer: Informer[core_pb2.PersistentVolume] = Informer(
            client, "persistentvolumes", label_selector=f"{volumes.LOCAL_PATH_NODE}={node}",
            name=f"local-path@{node}")
        self._wake = asyncio.Event()
        self.informer.add_handlers(lambda _: self._wake.set(), lambda _o, _n: self._wake.set())

    async def run(self) -> None:
        await asyncio.to_thread(self.root.mkdir, parents=True, exist_ok=True)
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.informer.run())
            while True:
                await self._wake.wait()
                self._wake.clear()
                for pv in self.informer.list():
                    await self._sync(pv)

    async def _sync(self, pv: core_pb2.PersistentVolume) -> None:
        action = plan_local_path(pv, self.root)
        path = volume_path(pv, self.root)
        if not action or path is None:
            return
        if action == "create":
            if not path.is_dir():
                await asyncio.to_thread(_make, path)
                log.info("local_path_created", volume=pv.metadata.name, path=str(path))
            return
        try:
            await asyncio.to_thread(_remove, path)
        except OSError as e:
            log.warning("local_path_not_removed", volume=pv.metadata.name, path=str(path), error=str(e))
            return
        log.info("local_path_removed", volume=pv.metadata.name, path=str(path))

        def lift(current: core_pb2.PersistentVolume) -> core_pb2.PersistentVolume | None:
            if volumes.LOCAL_PATH_FINALIZER not in current.metadata.finalizers:
                return None
            new = core_pb2.PersistentVolume()
            new.CopyFrom(current)
            new.metadata.finalizers.remove(volumes.LOCAL_PATH_FINALIZER)
            return new

        try:
            await retry_on_conflict(cached_first(pv, lambda: self.client.get("persistentvolumes", pv.metadata.name)),
                                    lift, self.client.update, what=f"persistentvolume {pv.metadata.name}")
        except NotFoundError:
            return
        except ApiError as e:
            log.warning("local_path_finalizer_not_removed", volume=pv.metadata.name, error=e.message)
            self._wake.set()


def _make(path: Path) -> None:
    path.mkdir(mode=0o777, exist_ok=True)
    path.chmod(0o777)


def _remove(path: Path) -> None:
    """Remove the directory; never through a mount point (a bind mount of it still in use)."""
    if not path.exists():
        return
    if os.path.ismount(path):
        raise OSError(f"{path} is a mount point")
    shutil.rmtree(path)
