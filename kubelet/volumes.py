"""Pod volumes: emptyDir directories and hostPath checks, and each container's mounts.

emptyDir is a directory under <root-dir>/pods/<uid>/volumes/kubernetes.io~empty-dir/<name>,
shared by the pod's containers and removed with the pod. medium: Memory is a
plain directory too (no tmpfs mount, so nothing can be left mounted if the
kubelet dies) and sizeLimit is not enforced. hostPath is checked against its
type as Kubernetes does (DirectoryOrCreate and FileOrCreate create what is
missing); a failed check, like any volume problem, reaches the user as the
container's CreateContainerConfigError.
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

from api.pb import core_pb2
from kubelet.runtime.interface import Mount

EMPTY_DIR = "kubernetes.io~empty-dir"


class VolumeError(Exception):
    """A volume cannot be set up; the container waits with CreateContainerConfigError."""


def pod_dir(pods_dir: Path, uid: str) -> Path:
    return Path(pods_dir) / uid


def empty_dir_path(pods_dir: Path, uid: str, name: str) -> Path:
    return pod_dir(pods_dir, uid) / "volumes" / EMPTY_DIR / name


_KIND_CHECKS = {
    "Socket": (stat.S_ISSOCK, "a socket file"),
    "CharDevice": (stat.S_ISCHR, "a character device"),
    "BlockDevice": (stat.S_ISBLK, "a block device"),
}


def check_host_path(path: str, type_: str) -> None:
    """Kubernetes' hostPath type check; *OrCreate types create what is missing."""
    p = Path(path)
    if type_ in ("", None):
        return
    if type_ in ("DirectoryOrCreate", "Directory"):
        if type_ == "DirectoryOrCreate" and not p.exists() and not p.is_symlink():
            try:
                p.mkdir(mode=0o755, parents=True)
            except OSError as exc:
                raise VolumeError(f"hostPath {path}: cannot create directory: {exc.strerror}") from None
        if not p.is_dir():
            raise VolumeError(f"hostPath type check failed: {path} is not a directory")
        return
    if type_ in ("FileOrCreate", "File"):
        if type_ == "FileOrCreate" and not p.exists() and not p.is_symlink():
            try:
                fd = os.open(path, os.O_CREAT | os.O_RDONLY, 0o644)
                os.close(fd)
            except OSError as exc:
                raise VolumeError(f"hostPath {path}: cannot create file: {exc.strerror}") from None
        if not p.is_file():
            raise VolumeError(f"hostPath type check failed: {path} is not a file")
        return
    if type_ in _KIND_CHECKS:
        test, what = _KIND_CHECKS[type_]
        try:
            mode = os.stat(path).st_mode
        except OSError:
            mode = 0
        if not test(mode):
            raise VolumeError(f"hostPath type check failed: {path} is not {what}")
        return
    raise VolumeError(f"hostPath {path}: unknown type {type_!r}")


def prepare_volumes(pod: core_pb2.Pod, pods_dir: Path) -> dict[str, str]:
    """Create the pod's emptyDirs and check its hostPaths; volume name -> host path."""
    paths: dict[str, str] = {}
    for v in pod.spec.volumes:
        if v.HasField("host_path"):
            check_host_path(v.host_path.path, v.host_path.type)
            paths[v.name] = v.host_path.path
        else:
            d = empty_dir_path(pods_dir, pod.metadata.uid, v.name)
            d.mkdir(parents=True, exist_ok=True)
            # World-writable like Kubernetes' emptyDir, so any container user can write.
            d.chmod(0o777)
            paths[v.name] = str(d)
    return paths


def container_mounts(container: core_pb2.Container, paths: dict[str, str]) -> tuple[Mount, ...]:
    """The container's volume mounts as host paths (subPath directories are created)."""
    mounts = []
    for m in container.volume_mounts:
        if m.name not in paths:
            raise VolumeError(f"volume {m.name!r} of mount {m.mount_path} is not defined in the pod")
        host = paths[m.name]
        if m.sub_path:
            sub = Path(host, m.sub_path)
            if not sub.exists():
                try:
                    sub.mkdir(mode=0o777, parents=True)
                except OSError as exc:
                    raise VolumeError(f"subPath {m.sub_path} of volume {m.name}: {exc.strerror}") from None
            host = str(sub)
        mounts.append(Mount(host_path=host, container_path=m.mount_path, readonly=m.read_only))
    return tuple(mounts)


def remove_pod_dir(pods_dir: Path, uid: str) -> None:
    """Remove a pod's directory (its emptyDirs). Nothing is ever mounted under it."""
    d = pod_dir(pods_dir, uid)
    if d.exists():
        shutil.rmtree(d, ignore_errors=True)
