"""Pod volumes: emptyDir, hostPath, configMap, secret, downwardAPI, projected and persistentVolumeClaim,
and each container's mounts.

configMap files live on disk under kubernetes.io~configmap/<name>; secret,
downwardAPI and projected volumes each get a tmpfs of their own (kubernetes.io~secret/<name>, ...), so a
Secret's bytes never touch the node's disk. Their files are written with the atomic writer (atomic.py)
and rewritten when the objects change (update_volumes): a running container sees the new files at once,
except through a subPath mount, which keeps the file it was started with. A persistentVolumeClaim resolves
to its bound volume's hostPath or local path. A required object that is missing, or a claim not yet bound,
fails the container's start with CreateContainerConfigError naming it; an optional one gives an empty volume.

A pod that mounts its ServiceAccount token gets `token`, `ca.crt` and `namespace` in a tmpfs of its own
(kubernetes.io~serviceaccount/token), mounted read-only at /var/run/secrets/kubernetes.io/serviceaccount in
every container that mounts nothing there itself, and rewritten when the token is renewed.

emptyDir is a directory under <root-dir>/pods/<uid>/volumes/kubernetes.io~empty-dir/<name>,
shared by the pod's containers and removed with the pod. medium: Memory is a
plain directory too (no tmpfs mount, so nothing can be left mounted if the
kubelet dies) and sizeLimit is not enforced. hostPath is checked against its
type as Kubernetes does (DirectoryOrCreate and FileOrCreate create what is
missing); a failed check, like any volume problem, reaches the user as the
container's CreateContainerConfigError.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import shutil
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from api.pb import core_pb2
from kubelet import atomic, envvars
from kubelet.envvars import PodContext, PodObjects
from kubelet.runtime import mounts
from kubelet.runtime.interface import Mount

EMPTY_DIR = "kubernetes.io~empty-dir"
CONFIG_MAP = "kubernetes.io~configmap"
SECRET = "kubernetes.io~secret"
DOWNWARD_API = "kubernetes.io~downward-api"
PROJECTED = "kubernetes.io~projected"
SERVICE_ACCOUNT = "kubernetes.io~serviceaccount"
SERVICE_ACCOUNT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
# The pod's token volume, in the paths prepare_volumes returns (a name no user volume can have).
SERVICE_ACCOUNT_VOLUME = "kube-api-access"
# Each secret, downwardAPI and projected volume is a tmpfs of at most this size.
TMPFS_SIZE = "16m"
_MS_NOSUID, _MS_NODEV = 2, 4
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


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


@dataclass(frozen=True)
class Refs:
    """The ConfigMaps, Secrets and claims a pod names (in its own namespace)."""

    config_maps: frozenset[str] = frozenset()
    secrets: frozenset[str] = frozenset()
    claims: frozenset[str] = frozenset()


def compute_refs(pod: core_pb2.Pod) -> Refs:
    """Every ConfigMap, Secret and claim the pod's volumes and containers' environments name."""
    cms: set[str] = set()
    secrets: set[str] = set()
    claims: set[str] = set()
    for v in pod.spec.volumes:
        if v.HasField("config_map"):
            cms.add(v.config_map.name)
        if v.HasField("secret"):
            secrets.add(v.secret.secret_name)
        if v.HasField("persistent_volume_claim"):
            claims.add(v.persistent_volume_claim.claim_name)
        for src in v.projected.sources:
            if src.HasField("config_map"):
                cms.add(src.config_map.name)
            if src.HasField("secret"):
                secrets.add(src.secret.name)
    for c in (*pod.spec.init_containers, *pod.spec.containers):
        for e in c.env:
            if e.value_from.HasField("config_map_key_ref"):
                cms.add(e.value_from.config_map_key_ref.name)
            if e.value_from.HasField("secret_key_ref"):
                secrets.add(e.value_from.secret_key_ref.name)
        for ef in c.env_from:
            if ef.HasField("config_map_ref"):
                cms.add(ef.config_map_ref.name)
            if ef.HasField("secret_ref"):
                secrets.add(ef.secret_ref.name)
    return Refs(frozenset(cms - {""}), frozenset(secrets - {""}), frozenset(claims - {""}))


# ---------------------------------------------------------------- file contents (pure)


def _key_files(values: dict[str, bytes], items: Iterable[core_pb2.KeyToPath], mode: int, *, what: str, name: str,
               optional: bool) -> dict[str, atomic.File]:
    items = list(items)
    if not items:
        return {k: atomic.File(v, mode) for k, v in values.items()}
    out = {}
    for item in items:
        if item.key not in values:
            if optional:
                continue
            raise VolumeError(f"{what} {name!r} has no key {item.key!r}")
        out[item.path] = atomic.File(values[item.key], item.mode if item.HasField("mode") else mode)
    return out


def _config_map_values(cm: core_pb2.ConfigMap) -> dict[str, bytes]:
    values = {k: v.encode() for k, v in cm.data.items()}
    values.update(cm.binary_data)
    return values


def _downward_files(pod: core_pb2.Pod, files: Iterable[core_pb2.DownwardAPIVolumeFile], mode: int,
                    ctx: PodContext) -> dict[str, atomic.File]:
    out = {}
    for f in files:
        if f.HasField("field_ref"):
            text = envvars.field_value(pod, f.field_ref.field_path, ctx)
        else:
            container = next((c for c in pod.spec.containers if c.name == f.resource_field_ref.container_name),
                             pod.spec.containers[0])
            text = envvars.resource_value(pod, container, f.resource_field_ref, ctx)
        out[f.path] = atomic.File(text.encode(), f.mode if f.HasField("mode") else mode)
    return out


class MissingObjectError(VolumeError):
    """A required ConfigMap or Secret is not there (yet)."""


def _required(obj: object | None, what: str, name: str, optional: bool) -> bool:
    """Whether the object is there; raise if it is required and missing."""
    if obj is not None:
        return True
    if optional:
        return False
    raise MissingObjectError(f'{what} "{name}" not found')


def compute_files(pod: core_pb2.Pod, v: core_pb2.Volume, objects: PodObjects, ctx: PodContext
                  ) -> dict[str, atomic.File]:
    """The files of a configMap, secret, downwardAPI or projected volume, from the objects as fetched."""
    if v.HasField("config_map"):
        src = v.config_map
        cm = objects.config_maps.get(src.name)
        optional = src.HasField("optional") and src.optional
        if not _required(cm, "configmap", src.name, optional):
            return {}
        return _key_files(_config_map_values(cm), src.items, src.default_mode, what="configmap",  # type: ignore[arg-type]
                          name=src.name, optional=optional)
    if v.HasField("secret"):
        src_s = v.secret
        secret = objects.secrets.get(src_s.secret_name)
        optional = src_s.HasField("optional") and src_s.optional
        if not _required(secret, "secret", src_s.secret_name, optional):
            return {}
        return _key_files(dict(secret.data), src_s.items, src_s.default_mode, what="secret",  # type: ignore[union-attr]
                          name=src_s.secret_name, optional=optional)
    if v.HasField("downward_api"):
        return _downward_files(pod, v.downward_api.items, v.downward_api.default_mode, ctx)
    out: dict[str, atomic.File] = {}
    mode = v.projected.default_mode
    for p in v.projected.sources:
        if p.HasField("config_map"):
            cm = objects.config_maps.get(p.config_map.name)
            optional = p.config_map.HasField("optional") and p.config_map.optional
            if _required(cm, "configmap", p.config_map.name, optional):
                out.update(_key_files(_config_map_values(cm), p.config_map.items, mode,  # type: ignore[arg-type]
                                      what="configmap", name=p.config_map.name, optional=optional))
        elif p.HasField("secret"):
            secret = objects.secrets.get(p.secret.name)
            optional = p.secret.HasField("optional") and p.secret.optional
            if _required(secret, "secret", p.secret.name, optional):
                out.update(_key_files(dict(secret.data), p.secret.items, mode,  # type: ignore[union-attr]
                                      what="secret", name=p.secret.name, optional=optional))
        elif p.HasField("downward_api"):
            out.update(_downward_files(pod, p.downward_api.items, mode, ctx))
        elif p.HasField("service_account_token"):
            raise VolumeError("serviceAccountToken projection: this cluster issues no service account tokens")
    return out


def claim_path(claim_name: str, objects: PodObjects) -> str:
    """The host path of a claim's bound volume."""
    pvc = objects.claims.get(claim_name)
    if pvc is None:
        raise MissingObjectError(f'persistentvolumeclaim "{claim_name}" not found')
    if pvc.metadata.HasField("deletion_timestamp"):
        raise VolumeError(f'persistentvolumeclaim "{claim_name}" is being deleted')
    if pvc.status.phase != "Bound" or not pvc.spec.volume_name:
        raise MissingObjectError(f'persistentvolumeclaim "{claim_name}" is not bound')
    pv = objects.volumes.get(pvc.spec.volume_name)
    if pv is None:
        raise MissingObjectError(f'persistentvolume "{pvc.spec.volume_name}" of claim "{claim_name}" not found')
    if pv.spec.HasField("host_path"):
        check_host_path(pv.spec.host_path.path, pv.spec.host_path.type)
        return pv.spec.host_path.path
    if pv.spec.HasField("local"):
        if not Path(pv.spec.local.path).is_dir():
            raise VolumeError(f"local volume {pv.metadata.name}: {pv.spec.local.path} is not a directory on this "
                              f"node")
        return pv.spec.local.path
    raise VolumeError(f"persistentvolume {pv.metadata.name!r} has no volume source this node can mount")


# ---------------------------------------------------------------- setting up


def _plugin_dir(v: core_pb2.Volume) -> str | None:
    for field, plugin in (("config_map", CONFIG_MAP), ("secret", SECRET), ("downward_api", DOWNWARD_API),
                          ("projected", PROJECTED)):
        if v.HasField(field):
            return plugin
    return None


def in_memory(v: core_pb2.Volume) -> bool:
    """Secret, downwardAPI and projected volumes live on tmpfs (configMap files on disk, as in Kubernetes)."""
    return v.HasField("secret") or v.HasField("downward_api") or v.HasField("projected")


def within_pods_dir(pod: core_pb2.Pod) -> bool:
    """Whether all of the pod's volume files are under the pods directory: no hostPath or claim, whose files are
    elsewhere (perhaps on a slow disk)."""
    return all(_plugin_dir(v) is not None or v.HasField("empty_dir") for v in pod.spec.volumes)


def volume_dir(pods_dir: Path, uid: str, v: core_pb2.Volume) -> Path:
    return pod_dir(pods_dir, uid) / "volumes" / (_plugin_dir(v) or EMPTY_DIR) / v.name


def mount_tmpfs(path: Path) -> None:
    """A private tmpfs at `path` (kept if one is mounted there already, as after a kubelet restart)."""
    path.mkdir(parents=True, exist_ok=True)
    if os.path.ismount(path):
        return
    opts = f"mode=0755,size={TMPFS_SIZE}".encode()
    if _libc.mount(b"tmpfs", str(path).encode(), b"tmpfs", _MS_NOSUID | _MS_NODEV, opts) != 0:
        err = ctypes.get_errno()
        raise VolumeError(f"cannot mount tmpfs at {path}: {os.strerror(err)}")


def sync_projected(pod: core_pb2.Pod, v: core_pb2.Volume, pods_dir: Path, objects: PodObjects,
                   ctx: PodContext) -> Path:
    """Write a configMap, secret, downwardAPI or projected volume's files (atomically); its directory."""
    files = compute_files(pod, v, objects, ctx)
    d = volume_dir(pods_dir, pod.metadata.uid, v)
    if in_memory(v):
        mount_tmpfs(d)
    atomic.write(d, files)
    return d


def service_account_dir(pods_dir: Path, uid: str) -> Path:
    return pod_dir(pods_dir, uid) / "volumes" / SERVICE_ACCOUNT / "token"


def service_account_files(files: Mapping[str, bytes]) -> dict[str, atomic.File]:
    """The token volume's files, 0644 as Kubernetes' kube-api-access volume (defaultMode 420)."""
    return {name: atomic.File(data, 0o644) for name, data in files.items()}


def sync_service_account(pod: core_pb2.Pod, pods_dir: Path, objects: PodObjects, *, tmpfs: bool = True) -> str | None:
    """Write the pod's token files (atomically, on a tmpfs unless `tmpfs` is off, as for hollow nodes, whose pods
    run nothing); their directory, or None for a pod without them."""
    if objects.service_account_error:
        raise VolumeError(objects.service_account_error)
    if objects.service_account is None:
        return None
    d = service_account_dir(pods_dir, pod.metadata.uid)
    if tmpfs:
        mount_tmpfs(d)
    atomic.write(d, service_account_files(objects.service_account))
    return str(d)


def prepare_volumes(pod: core_pb2.Pod, pods_dir: Path, objects: PodObjects | None = None,
                    ctx: PodContext | None = None, *, tmpfs: bool = True) -> dict[str, str]:
    """Set up every volume of the pod; volume name -> host path."""
    objects = objects or PodObjects()
    ctx = ctx or PodContext(node_name=pod.spec.node_name, host_ip="", pod_ip="")
    paths: dict[str, str] = {}
    token_dir = sync_service_account(pod, pods_dir, objects, tmpfs=tmpfs)
    if token_dir is not None:
        paths[SERVICE_ACCOUNT_VOLUME] = token_dir
    for v in pod.spec.volumes:
        if v.HasField("host_path"):
            check_host_path(v.host_path.path, v.host_path.type)
            paths[v.name] = v.host_path.path
        elif v.HasField("persistent_volume_claim"):
            paths[v.name] = claim_path(v.persistent_volume_claim.claim_name, objects)
            set_ownership(Path(paths[v.name]), pod.spec.security_context)
        elif _plugin_dir(v) is not None:
            paths[v.name] = str(sync_projected(pod, v, pods_dir, objects, ctx))
        else:
            d = empty_dir_path(pods_dir, pod.metadata.uid, v.name)
            d.mkdir(parents=True, exist_ok=True)
            # World-writable like Kubernetes' emptyDir, so any container user can write.
            d.chmod(0o777)
            set_ownership(d, pod.spec.security_context)
            paths[v.name] = str(d)
    return paths


def _owned(root: Path, gid: int) -> bool:
    st = root.stat()
    return st.st_gid == gid and st.st_mode & 0o2070 == 0o2070


def set_ownership(root: Path, sc: core_pb2.PodSecurityContext) -> None:
    """Give a volume to the pod's fsGroup, as Kubernetes' SetVolumeOwnership: every file and directory in that
    group, group-readable and -writable, directories set-group-ID so new files join it. With fsGroupChangePolicy
    OnRootMismatch, a volume whose root already is so is left alone."""
    if not sc.HasField("fs_group"):
        return
    gid = sc.fs_group
    if sc.fs_group_change_policy == "OnRootMismatch" and _owned(root, gid):
        return
    for path in (root, *root.rglob("*")):
        if path.is_symlink():
            continue
        os.chown(path, -1, gid)
        mode = path.stat().st_mode & 0o7777
        path.chmod(mode | (0o2070 if path.is_dir() else 0o060))


def update_volumes(pod: core_pb2.Pod, pods_dir: Path, objects: PodObjects, ctx: PodContext) -> list[str]:
    """Rewrite the files of the pod's set-up configMap, secret, downwardAPI and projected volumes from the
    objects now; a volume whose object went missing keeps its files. The names of the volumes that changed."""
    changed = []
    if objects.service_account is not None and \
            (service_account_dir(pods_dir, pod.metadata.uid) / atomic.DATA).is_symlink():
        if atomic.write(service_account_dir(pods_dir, pod.metadata.uid),
                        service_account_files(objects.service_account)):
            changed.append(SERVICE_ACCOUNT_VOLUME)
    for v in pod.spec.volumes:
        if _plugin_dir(v) is None:
            continue
        d = volume_dir(pods_dir, pod.metadata.uid, v)
        if not (d / atomic.DATA).is_symlink():
            continue  # not set up yet: the container's start does it
        try:
            files = compute_files(pod, v, objects, ctx)
        except VolumeError:
            continue
        if atomic.write(d, files):
            changed.append(v.name)
    return changed


def container_mounts(container: core_pb2.Container, paths: dict[str, str]) -> tuple[Mount, ...]:
    """The container's volume mounts as host paths (subPath directories are created)."""
    mounts = []
    for m in container.volume_mounts:
        if m.name not in paths:
            raise VolumeError(f"volume {m.name!r} of mount {m.mount_path} is not defined in the pod")
        host = paths[m.name]
        if m.sub_path:
            sub = Path(host, m.sub_path)
            if sub.is_symlink():
                # A file of a configMap or secret volume: bind the file itself, which later updates replace
                # rather than change (Kubernetes' subPath behaviour).
                sub = Path(os.path.realpath(sub))
            if not sub.exists():
                try:
                    sub.mkdir(mode=0o777, parents=True)
                except OSError as exc:
                    raise VolumeError(f"subPath {m.sub_path} of volume {m.name}: {exc.strerror}") from None
            host = str(sub)
        mounts.append(Mount(host_path=host, container_path=m.mount_path, readonly=m.read_only))
    token_dir = paths.get(SERVICE_ACCOUNT_VOLUME)
    if token_dir is not None and not any(m.mount_path.rstrip("/") == SERVICE_ACCOUNT_PATH
                                         for m in container.volume_mounts):
        mounts.append(Mount(host_path=token_dir, container_path=SERVICE_ACCOUNT_PATH, readonly=True))
    return tuple(mounts)


def remove_pod_dir(pods_dir: Path, uid: str) -> None:
    """Remove a pod's directory: its volumes' tmpfs mounts first, never deleting through a mount."""
    d = pod_dir(pods_dir, uid)
    if not d.exists():
        return
    left = mounts.unmount_all(d.absolute())
    if left:
        raise VolumeError(f"still mounted under {d}: {', '.join(left)}")
    shutil.rmtree(d, ignore_errors=True)
