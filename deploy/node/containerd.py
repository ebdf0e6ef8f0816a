"""One node's containerd: config, start inside the node's netns, stop, clean up.

Several nodes share one machine in the lab, so everything containerd owns
is under the node's directory (root, state, sockets, opt, runc state, CNI
config and IPAM data), and each instance runs in its node's network
namespace, entered with `nsenter --net` (`ip netns exec` remounts /sys and
runc then finds no cgroups). `stop_and_clean(node_dir)` needs nothing but
the directory: the config is saved there as node.json.

Layout of node_dir:
    node.json  containerd.toml  containerd.log  containerd.pid
    run/       containerd.sock, ttrpc and debug sockets, runc state
    root/ state/ opt/           containerd's own
    cni/net.d/ cni/networks/    conflist, host-local IPAM data
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import structlog

from deploy.node import images, pod_bridge, registry
from kubelet.runtime import cgroups, mounts
from kubelet.runtime.cni import CNIError, CNINetwork, render_conflist
from kubelet.runtime.cri import CRIRuntime
from kubelet.runtime.interface import ContainerRuntimeError

log = structlog.get_logger(__name__)

CNI_BIN_DIR = "/usr/lib/cni"
# Fixed by containerd, whatever the instance's config says.
SHIM_SOCKET_DIR = Path("/run/containerd/s")
LIBCNI_CACHE = Path("/var/lib/cni/results")
# sun_path is 108 bytes including the terminator.
MAX_SOCKET_PATH = 107
# Plugins a CRI node never uses; skipping them makes startup quicker and quieter.
DISABLED_PLUGINS = (
    "io.containerd.snapshotter.v1.aufs",
    "io.containerd.snapshotter.v1.btrfs",
    "io.containerd.snapshotter.v1.devmapper",
    "io.containerd.snapshotter.v1.zfs",
    "io.containerd.tracing.processor.v1.otlp",
    "io.containerd.internal.v1.tracing",
)


class NodeRuntimeError(Exception):
    """containerd for a node could not be started, or a node could not be cleaned."""


@dataclass(frozen=True)
class NodeConfig:
    """One node's containerd. Pods' cgroup_parent must lie under cgroup_root."""

    name: str
    node_dir: Path
    netns: str
    pod_cidr: str
    cgroup_root: str = ""
    image_dir: Path = images.DEFAULT_CACHE_DIR
    cni_bin_dir: str = CNI_BIN_DIR
    bridge: str = "cni0"
    log_level: str = "info"
    start_timeout: float = 30.0  # seconds to wait for containerd to serve, and for CRI to see an import
    # https://host:port of the cluster's registry (registry.py): the mirror of docker.io and registry.k8s.io,
    # reached over mutual TLS with registry_tls (a node's certificate); http:// without it (tests only).
    registry_mirror: str = ""
    registry_tls: registry.MirrorTLS | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "node_dir", Path(self.node_dir).absolute())
        object.__setattr__(self, "image_dir", Path(self.image_dir))
        if not self.cgroup_root:
            object.__setattr__(self, "cgroup_root", f"/kubelite/{self.name}")

    @property
    def netns_path(self) -> str:
        return self.netns if self.netns.startswith("/") else f"/run/netns/{self.netns}"

    @property
    def run_dir(self) -> Path:
        return self.node_dir / "run"

    @property
    def address(self) -> str:
        """containerd's gRPC socket, which also serves CRI."""
        return str(self.run_dir / "containerd.sock")

    @property
    def config_path(self) -> Path:
        return self.node_dir / "containerd.toml"

    @property
    def log_path(self) -> Path:
        return self.node_dir / "containerd.log"

    @property
    def pid_path(self) -> Path:
        return self.node_dir / "containerd.pid"

    @property
    def cni_conf_dir(self) -> Path:
        return self.node_dir / "cni" / "net.d"

    @property
    def cni_data_dir(self) -> Path:
        return self.node_dir / "cni" / "networks"

    @property
    def runc_root(self) -> Path:
        return self.run_dir / "runc"

    def to_json(self) -> str:
        return json.dumps({k: str(v) if isinstance(v, Path) else v for k, v in asdict(self).items()}, indent=2)

    @classmethod
    def load(cls, node_dir: Path) -> NodeConfig:
        data = json.loads((Path(node_dir) / "node.json").read_text())
        if data.get("registry_tls"):
            data["registry_tls"] = registry.MirrorTLS(**data["registry_tls"])
        return cls(**data)


# ---- rendering ----


def render_config(cfg: NodeConfig) -> dict[str, Any]:
    """containerd's config (version 2) for the node, as a dict."""
    cri = "io.containerd.grpc.v1.cri"
    return {
        "version": 2,
        "root": str(cfg.node_dir / "root"),
        "state": str(cfg.node_dir / "state"),
        "disabled_plugins": list(DISABLED_PLUGINS),
        "grpc": {"address": cfg.address},
        "ttrpc": {"address": str(cfg.run_dir / "containerd.sock.ttrpc")},
        "debug": {"address": str(cfg.run_dir / "debug.sock"), "level": cfg.log_level},
        "plugins": {
            "io.containerd.internal.v1.opt": {"path": str(cfg.node_dir / "opt")},
            cri: {
                "sandbox_image": images.PAUSE_IMAGE,
                # This VM refuses negative oom_score_adj even to root; runc then fails to start.
                "restrict_oom_score_adj": True,
                "disable_apparmor": True,
                "enable_selinux": False,
                # Pod netns bind mounts stay under this node's state, not /run/netns.
                "netns_mounts_under_state_dir": True,
                "stream_server_address": "127.0.0.1",
                "stream_server_port": "0",
                "containerd": {
                    "snapshotter": "overlayfs",
                    "default_runtime_name": "runc",
                    "runtimes": {"runc": {
                        "runtime_type": "io.containerd.runc.v2",
                        "options": {"SystemdCgroup": False, "Root": str(cfg.runc_root)},
                    }},
                },
                "cni": {"bin_dir": cfg.cni_bin_dir, "conf_dir": str(cfg.cni_conf_dir), "max_conf_num": 1},
                **({"registry": {"config_path": str(cfg.node_dir / "certs.d")}} if cfg.registry_mirror else {}),
            },
        },
    }


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot render {type(v).__name__} as TOML")


def _toml_key(k: str) -> str:
    return k if k.replace("_", "").replace("-", "").isalnum() else json.dumps(k)


def render_toml(data: Mapping[str, Any], *, prefix: tuple[str, ...] = ()) -> str:
    """A small TOML writer: scalars and lists, then nested tables."""
    lines = [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in data.items() if not isinstance(v, Mapping)]
    out = []
    if lines or not prefix:
        header = [f"[{'.'.join(_toml_key(p) for p in prefix)}]"] if prefix else []
        out.append("\n".join(header + lines))
    for k, v in data.items():
        if isinstance(v, Mapping):
            out.append(render_toml(v, prefix=(*prefix, k)))
    return "\n\n".join(s for s in out if s) + ("\n" if not prefix else "")


def write_config(cfg: NodeConfig) -> None:
    """Write containerd.toml, the CNI conflist and node.json into the node dir."""
    for path in (cfg.address, str(cfg.run_dir / "containerd.sock.ttrpc")):
        if len(path) > MAX_SOCKET_PATH:
            raise NodeRuntimeError(f"socket path too long for a unix socket ({len(path)} bytes): {path}")
    for d in (cfg.run_dir, cfg.cni_conf_dir, cfg.cni_data_dir):
        d.mkdir(parents=True, exist_ok=True)
    cfg.config_path.write_text(render_toml(render_config(cfg)))
    conflist = render_conflist(pod_cidr=cfg.pod_cidr, data_dir=str(cfg.cni_data_dir), bridge=cfg.bridge)
    (cfg.cni_conf_dir / "10-kubelite.conflist").write_text(json.dumps(conflist, indent=2) + "\n")
    (cfg.node_dir / "node.json").write_text(cfg.to_json() + "\n")
    for upstream in registry.MIRRORED if cfg.registry_mirror else ():
        hosts = cfg.node_dir / "certs.d" / upstream / "hosts.toml"
        hosts.parent.mkdir(parents=True, exist_ok=True)
        hosts.write_text(registry.hosts_toml(cfg.registry_mirror, upstream, cfg.registry_tls))


# ---- start and stop ----


def read_pid(node_dir: Path) -> int | None:
    """The node's containerd pid if it is running.

    The process must name this node's config: a recycled pid could be another node's containerd.
    """
    node_dir = Path(node_dir).absolute()
    try:
        pid = int((node_dir / "containerd.pid").read_text())
    except (FileNotFoundError, ValueError):
        return None
    return pid if _alive(pid) and str(node_dir / "containerd.toml").encode() in _cmdline(pid) else None


def _alive(pid: int) -> bool:
    """Running and not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


async def start(cfg: NodeConfig) -> int:
    """Start the node's containerd in its netns and import our images; returns its pid.

    Returns once CRI answers and sees the pause image. containerd runs in its
    own session, detached from the caller, so it outlives it like a daemon.
    """
    tarballs = await asyncio.to_thread(_prepare, cfg)
    try:
        await asyncio.to_thread(_spawn, cfg)
        pid = await wait_started(cfg, tarballs)
    except BaseException:
        # A half-started node is not left running.
        await stop(cfg.node_dir)
        raise
    return pid


async def wait_started(cfg: NodeConfig, tarballs: Mapping[str, Path]) -> int:
    """Wait for a containerd started by someone else (start() or a systemd unit running
    `argv(cfg)`) to answer CRI, then import the images; returns its pid."""
    pid = await _wait_ready(cfg)
    # A containerd started again (a node back from a stop) still has them: importing again took seconds.
    if await _missing_images(cfg, tarballs):
        everything = await asyncio.to_thread(images.bundle, tarballs, cfg.image_dir / "bundle" / "images.tar")
        await images.import_image(everything, cfg.address, timeout=max(120.0, 4 * cfg.start_timeout))
    await _wait_image(cfg, images.PAUSE_IMAGE)
    log.info("containerd_started", node=cfg.name, pid=pid, address=cfg.address, netns=cfg.netns)
    return pid


def argv(cfg: NodeConfig) -> list[str]:
    """The command that runs the node's containerd in the foreground and records its pid
    (sh writes its own pid, which exec keeps through nsenter into containerd)."""
    return ["sh", "-c", 'echo $$ > "$0"; exec "$@"', str(cfg.pid_path),
            "nsenter", f"--net={cfg.netns_path}", "--", "containerd", "--config", str(cfg.config_path)]


def prepare(cfg: NodeConfig) -> dict[str, Path]:
    """Write the config and build the images for a containerd someone else will start."""
    return _prepare(cfg)


def _prepare(cfg: NodeConfig) -> dict[str, Path]:
    if not Path(cfg.netns_path).exists():
        raise NodeRuntimeError(f"network namespace {cfg.netns_path} does not exist")
    if (pid := read_pid(cfg.node_dir)) is not None:
        raise NodeRuntimeError(f"containerd for {cfg.name} already runs (pid {pid})")
    write_config(cfg)
    try:
        pod_bridge.ensure_pinned(cfg.netns_path, cfg.bridge)
    except pod_bridge.BridgeError as exc:
        raise NodeRuntimeError(f"the pod bridge of {cfg.name}: {exc}") from exc
    cfg.pid_path.unlink(missing_ok=True)
    return images.build_all(cfg.image_dir)


def _spawn(cfg: NodeConfig) -> None:
    # setsid -f forks, so containerd is nobody's child here and leaves no zombie.
    with open(cfg.log_path, "ab") as logf:
        subprocess.run(["setsid", "-f", *argv(cfg)], stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                       check=True, timeout=10)


def _started(cfg: NodeConfig) -> tuple[int | None, bool]:
    """(pid if running, whether it already died) — sh writes the pid file before exec."""
    pid = read_pid(cfg.node_dir)
    if pid is not None:
        return (pid if Path(cfg.address).exists() else None), False
    try:
        return None, not _alive(int(cfg.pid_path.read_text()))
    except (FileNotFoundError, ValueError):
        return None, False


async def _wait_ready(cfg: NodeConfig) -> int:
    deadline = time.monotonic() + cfg.start_timeout
    rt = CRIRuntime(cfg.address, timeout=1.0)
    try:
        while True:
            pid, died = _started(cfg)
            if pid is not None:
                with contextlib.suppress(ContainerRuntimeError):
                    await rt.version()
                    return pid
            if died or time.monotonic() > deadline:
                raise NodeRuntimeError(f"containerd for {cfg.name} did not come up:\n{_log_tail(cfg.log_path)}")
            await asyncio.sleep(0.05)
    finally:
        await rt.close()


async def _missing_images(cfg: NodeConfig, tarballs: Mapping[str, Path]) -> list[str]:
    """The images of `tarballs` that CRI does not have under their names with the same ID."""
    wanted = await asyncio.to_thread(lambda: {name: images.image_id(path) for name, path in tarballs.items()})
    rt = CRIRuntime(cfg.address, timeout=10.0)
    held: dict[str, str] = {}
    try:
        held = {tag: image.id for image in await rt.list_images() for tag in image.repo_tags}
    except ContainerRuntimeError as e:  # no list: import them all, as before there was one
        log.warning("image_list_failed", node=cfg.name, error=str(e))
    finally:
        await rt.close()
    return sorted(name for name, image_id in wanted.items() if held.get(name) != image_id)


async def _wait_image(cfg: NodeConfig, image: str) -> None:
    """CRI learns about imported images from events; wait until it sees this one."""
    rt = CRIRuntime(cfg.address, timeout=2.0)
    try:
        deadline = time.monotonic() + cfg.start_timeout
        while True:
            # One call missing its deadline on a busy machine (five emulated VMs on two cores) is asked again.
            with contextlib.suppress(ContainerRuntimeError):
                if await rt.image_status(image) is not None:
                    return
            if time.monotonic() > deadline:
                raise NodeRuntimeError(f"CRI on {cfg.name} does not see {image} after import")
            await asyncio.sleep(0.05)
    finally:
        await rt.close()


def _log_tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


async def stop(node_dir: Path, *, timeout: float = 10.0) -> None:
    """Stop the node's containerd only (SIGTERM, then SIGKILL); shims and pods keep running."""
    pid = read_pid(node_dir)
    if pid is None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
        if not await _wait_gone([pid], timeout):
            os.kill(pid, signal.SIGKILL)
            await _wait_gone([pid], 5.0)
    log.info("containerd_stopped", node_dir=str(node_dir), pid=pid)


async def _wait_gone(pids: list[int], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while any(_alive(p) for p in pids):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


# ---- cleanup ----


async def _remove_pods(cfg: NodeConfig, budget: float) -> None:
    """Ask CRI to tear every pod down: it releases addresses and port maps and unmounts."""
    rt = CRIRuntime(cfg.address, timeout=budget)
    try:
        sandboxes = await rt.list_pod_sandboxes()

        async def remove(sandbox_id: str) -> None:
            await rt.stop_pod_sandbox(sandbox_id)
            await rt.remove_pod_sandbox(sandbox_id)

        async with asyncio.timeout(budget):
            await asyncio.gather(*(remove(s.id) for s in sandboxes))
    except (ContainerRuntimeError, TimeoutError) as exc:
        log.warning("pod_cleanup_incomplete", node=cfg.name, error=str(exc))
    finally:
        await rt.close()


@dataclass(frozen=True)
class _Shim:
    pid: int
    namespace: str
    id: str

    def socket(self, address: str) -> Path:
        """containerd names a shim's socket by sha256("<address>/<namespace>/<id>") in a
        fixed directory; a SIGKILLed shim cannot remove it."""
        return SHIM_SOCKET_DIR / hashlib.sha256(f"{address}/{self.namespace}/{self.id}".encode()).hexdigest()


def _shims(cfg: NodeConfig) -> list[_Shim]:
    """This node's shims: started with `-address <its containerd socket>`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        argv = _cmdline(int(entry.name)).decode(errors="replace").split("\0")
        flags = dict(zip(argv[1::2], argv[2::2], strict=False)) if "containerd-shim" in argv[0] else {}
        if flags.get("-address") == cfg.address:
            found.append(_Shim(int(entry.name), flags.get("-namespace", ""), flags.get("-id", "")))
    return found


def _crashed_sandboxes(cfg: NodeConfig) -> list[str]:
    """Sandboxes containerd still has on disk: after a clean removal there are none."""
    d = cfg.node_dir / "root" / "io.containerd.grpc.v1.cri" / "sandboxes"
    try:
        return sorted(p.name for p in d.iterdir())
    except FileNotFoundError:
        return []


async def _release_networks(cfg: NodeConfig, sandbox_ids: list[str]) -> None:
    """CNI DEL what containerd could not (port maps, addresses) and drop libcni's cached results.

    Only inside the node's namespace: run elsewhere, the plugins would touch this machine's own network.
    """
    if not sandbox_ids or not await asyncio.to_thread(os.path.exists, cfg.netns_path):
        return
    conflist = render_conflist(pod_cidr=cfg.pod_cidr, data_dir=str(cfg.cni_data_dir), bridge=cfg.bridge)
    net = CNINetwork(conflist, bin_dir=cfg.cni_bin_dir, netns=cfg.netns_path)
    for sandbox_id in sandbox_ids:
        try:
            await net.delete(sandbox_id, "")
        except CNIError as exc:
            log.warning("pod_network_release_failed", node=cfg.name, sandbox_id=sandbox_id, error=str(exc))
    await asyncio.to_thread(_drop_cni_cache, sandbox_ids)


def _drop_cni_cache(sandbox_ids: list[str]) -> None:
    """libcni caches each attachment as <network>-<sandbox id>-<ifname>."""
    for sandbox_id in sandbox_ids:
        for cached in LIBCNI_CACHE.glob(f"*-{sandbox_id}-*"):
            cached.unlink(missing_ok=True)


async def _kill_containers(cfg: NodeConfig) -> None:
    """`runc delete --force` every container runc still knows for this node."""
    try:
        ns_roots = list(cfg.runc_root.iterdir())
    except FileNotFoundError:
        ns_roots = []
    for ns_root in ns_roots:
        for state in ns_root.glob("*/state.json"):
            proc = await asyncio.create_subprocess_exec(
                "runc", "--root", str(ns_root), "delete", "--force", state.parent.name,
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
            )
            await proc.wait()


async def stop_and_clean(node_dir: Path, *, keep_logs: bool = True) -> None:
    """Stop the node's containerd and leave nothing of it behind.

    Pods are removed through CRI while containerd still answers. Then
    containerd, its shims and any surviving container are killed, networks
    of pods containerd could not remove are released (CNI DEL in the node's
    netns), every mount under the node dir is unmounted, the node's cgroups
    are removed, and its directory is deleted (all but containerd.log with
    keep_logs).
    """
    cfg = await asyncio.to_thread(_load, node_dir)
    if cfg is not None and read_pid(cfg.node_dir) is not None:
        await _remove_pods(cfg, budget=15.0)
    await stop(node_dir)
    if cfg is not None:
        await _kill_containers(cfg)
        shims = await asyncio.to_thread(_shims, cfg)
        for shim in shims:
            with contextlib.suppress(ProcessLookupError):
                os.kill(shim.pid, signal.SIGKILL)
        await _wait_gone([shim.pid for shim in shims], 5.0)
        for shim in shims:
            shim.socket(cfg.address).unlink(missing_ok=True)
        await _release_networks(cfg, await asyncio.to_thread(_crashed_sandboxes, cfg))
        await cgroups.remove(cfg.cgroup_root, kill_procs=True, prune_parents=True)
    await asyncio.to_thread(_remove_files, Path(node_dir), keep_logs)
    log.info("node_runtime_cleaned", node_dir=str(node_dir))


def _load(node_dir: Path) -> NodeConfig | None:
    return NodeConfig.load(node_dir) if (Path(node_dir) / "node.json").exists() else None


def _remove_files(node_dir: Path, keep_logs: bool) -> None:
    node_dir = node_dir.absolute()
    if not node_dir.exists():
        return
    left = mounts.unmount_all(node_dir)
    if left:
        # Never delete through a mount: that would reach into whatever it shows.
        raise NodeRuntimeError(f"still mounted under {node_dir}: {', '.join(left)}")
    for entry in node_dir.iterdir():
        if keep_logs and entry.name == "containerd.log":
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, onerror=_unless_gone)
        else:
            entry.unlink(missing_ok=True)
    if not keep_logs:
        with contextlib.suppress(FileNotFoundError):
            node_dir.rmdir()


def _unless_gone(func: Any, path: str, exc_info: Any) -> None:
    """rmtree's error handler: what vanished meanwhile is what we wanted; anything else is an error."""
    exc = exc_info[1]
    if not (isinstance(exc, OSError) and exc.errno in (errno.ENOENT, errno.ENODEV)):
        raise exc
