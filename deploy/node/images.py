"""Our own small OCI images, built without a registry or docker.

Each image is one gzip layer packed as an OCI image-layout tarball whose
index.json names it (`io.containerd.image.name`), which `ctr images import`
turns into a named image. Output is byte-for-byte reproducible (fixed
mtimes, owners and order, gzip without timestamp), and a build is skipped
when the cache already holds the tarball made from the same inputs.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import io
import json
import os
import platform
import secrets
import subprocess
import tarfile
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import structlog

from kubelet.runtime.images import BUSYBOX_IMAGE, PAUSE_IMAGE

__all__ = ["BUSYBOX_IMAGE", "PAUSE_IMAGE", "build_all", "import_image"]

log = structlog.get_logger(__name__)

DEFAULT_CACHE_DIR = Path("/var/lib/kubelite/images")
DEFAULT_BUSYBOX = Path("/bin/busybox")
INDEX_HTML = b"<html><body><h1>hello from kubelite busybox</h1></body></html>\n"

# 2023-01-01T00:00:00Z: a fixed mtime and creation date so rebuilds are identical.
EPOCH = 1672531200
CREATED = "2023-01-01T00:00:00Z"
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# Applets the tests and examples rely on; the build fails loudly if one is missing.
REQUIRED_APPLETS = (
    "sh", "httpd", "wget", "nc", "sleep", "cat", "echo", "hostname", "ls", "env",
    "ps", "kill", "true", "false", "timeout", "bc", "cut",
)  # fmt: skip

MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


class ImageError(Exception):
    """An image could not be built (missing compiler, busybox, applet) or imported."""


@dataclass(frozen=True)
class Entry:
    """One file, directory or symlink of an image layer (absolute path)."""

    path: str
    kind: Literal["file", "dir", "symlink"] = "file"
    mode: int = 0o644
    data: bytes = b""
    target: str = ""


@dataclass(frozen=True)
class ImageConfig:
    """The runtime defaults recorded in an image's config blob."""

    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    env: tuple[str, ...] = (PATH_ENV,)
    working_dir: str = "/"


def _json(obj: object) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def oci_arch(machine: str | None = None) -> str:
    """The OCI architecture name of this machine (amd64, arm64, ...)."""
    machine = machine or platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386"}.get(machine, machine)


def _with_parents(entries: Iterable[Entry]) -> list[Entry]:
    """Entries plus any missing parent directories, sorted by path."""
    by_path = {e.path.rstrip("/") or "/": e for e in entries}
    for path in list(by_path):
        parent = os.path.dirname(path)
        while parent not in ("/", "") and parent not in by_path:
            by_path[parent] = Entry(parent, "dir", 0o755)
            parent = os.path.dirname(parent)
    by_path.pop("/", None)
    return [by_path[p] for p in sorted(by_path)]


def layer_tar(entries: Iterable[Entry]) -> bytes:
    """A deterministic uncompressed tar of the entries (root-owned, fixed mtime)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for e in _with_parents(entries):
            info = tarfile.TarInfo(e.path.lstrip("/"))
            info.mtime, info.mode, info.uid, info.gid = EPOCH, e.mode, 0, 0
            if e.kind == "dir":
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif e.kind == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, e.target
                tar.addfile(info)
            else:
                info.size = len(e.data)
                tar.addfile(info, io.BytesIO(e.data))
    return buf.getvalue()


def _tar_files(files: Mapping[str, bytes]) -> bytes:
    """A deterministic tar of plain files, for the image-layout archive itself."""
    return layer_tar(Entry("/" + name, data=data) for name, data in files.items())


def build_layout(name: str, entries: Iterable[Entry], config: ImageConfig, *, arch: str = "") -> dict[str, bytes]:
    """The files of an OCI image layout holding one single-layer image called `name`."""
    raw = layer_tar(entries)
    layer = gzip.compress(raw, compresslevel=9, mtime=0)
    image_config = {
        "architecture": arch or oci_arch(),
        "os": "linux",
        "created": CREATED,
        "config": {
            "Env": list(config.env),
            "Entrypoint": list(config.entrypoint) or None,
            "Cmd": list(config.cmd) or None,
            "WorkingDir": config.working_dir,
        },
        "rootfs": {"type": "layers", "diff_ids": [_digest(raw)]},
        "history": [{"created": CREATED, "created_by": "kubelite images build"}],
    }
    config_blob = _json(image_config)
    manifest = _json({
        "schemaVersion": 2,
        "mediaType": MEDIA_MANIFEST,
        "config": {"mediaType": MEDIA_CONFIG, "digest": _digest(config_blob), "size": len(config_blob)},
        "layers": [{"mediaType": MEDIA_LAYER, "digest": _digest(layer), "size": len(layer)}],
    })
    tag = name.rsplit(":", 1)[1] if ":" in name.rsplit("/", 1)[-1] else "latest"
    index = _json({
        "schemaVersion": 2,
        "mediaType": MEDIA_INDEX,
        "manifests": [{
            "mediaType": MEDIA_MANIFEST,
            "digest": _digest(manifest),
            "size": len(manifest),
            "annotations": {"io.containerd.image.name": name, "org.opencontainers.image.ref.name": tag},
        }],
    })
    blobs = {f"blobs/sha256/{_digest(b)[7:]}": b for b in (layer, config_blob, manifest)}
    return {"oci-layout": _json({"imageLayoutVersion": "1.0.0"}), "index.json": index, **blobs}


def pause_entries(pause_binary: bytes) -> list[Entry]:
    return [Entry("/pause", data=pause_binary, mode=0o755)]


def busybox_entries(busybox: bytes, applets: Sequence[str]) -> list[Entry]:
    """A minimal busybox root: the binary, one symlink per applet, users, a web root."""
    missing = sorted(set(REQUIRED_APPLETS) - set(applets))
    if missing:
        raise ImageError(f"busybox lacks applets: {', '.join(missing)}")
    entries = [
        Entry("/bin/busybox", data=busybox, mode=0o755),
        Entry("/usr/bin/env", "symlink", 0o777, target="/bin/busybox"),
        Entry("/etc/passwd", data=b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n"),
        Entry("/etc/group", data=b"root:x:0:\nnobody:x:65534:\n"),
        Entry("/www/index.html", data=INDEX_HTML),
        Entry("/root", "dir", 0o700),
        Entry("/tmp", "dir", 0o1777),
        Entry("/home", "dir", 0o755),
        *(Entry(d, "dir", 0o755) for d in ("/dev", "/proc", "/sys", "/var", "/usr/sbin", "/sbin")),
    ]
    entries += [Entry(f"/bin/{a}", "symlink", 0o777, target="busybox") for a in applets if a != "busybox"]
    return entries


def busybox_applets(busybox: Path) -> list[str]:
    """The applet names compiled into a busybox binary (`busybox --list`)."""
    out = subprocess.run([str(busybox), "--list"], check=True, capture_output=True, text=True, timeout=10)
    return sorted({a for a in out.stdout.split() if "/" not in a})


def pause_source() -> bytes:
    return (Path(__file__).parent / "images" / "pause.c").read_bytes()


def compile_pause(source: bytes, *, cc: str = "gcc") -> bytes:
    """Compile pause.c into a stripped static binary."""
    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp, "pause.c"), Path(tmp, "pause")
        src.write_bytes(source)
        try:
            subprocess.run([cc, "-static", "-O2", "-s", "-o", str(out), str(src)],
                           check=True, capture_output=True, timeout=120)
        except subprocess.CalledProcessError as exc:
            raise ImageError(f"compiling pause.c failed: {exc.stderr.decode(errors='replace')}") from exc
        return out.read_bytes()


def _cached(out: Path, key: str) -> bool:
    stamp = out.with_name(out.name + ".inputs")
    return out.exists() and stamp.exists() and stamp.read_text() == key


def _write_cached(out: Path, key: str, files: Mapping[str, bytes]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    # Unique per writer: several nodes of one lab may build into one cache at once.
    tmp = out.with_name(f".{out.name}.{secrets.token_hex(6)}.tmp")
    tmp.write_bytes(_tar_files(files))
    tmp.replace(out)
    out.with_name(out.name + ".inputs").write_text(key)


def _key(*parts: bytes) -> str:
    """Cache key over the inputs and this builder's own code, so editing it rebuilds."""
    h = hashlib.sha256(Path(__file__).read_bytes())
    for p in parts:
        h.update(hashlib.sha256(p).digest())
    return h.hexdigest()


def build_pause(cache_dir: Path = DEFAULT_CACHE_DIR, *, cc: str = "gcc") -> Path:
    """Build (or reuse) the pause image tarball; returns its path."""
    source = pause_source()
    try:
        cc_version = subprocess.run([cc, "--version"], capture_output=True, timeout=30).stdout
    except FileNotFoundError as exc:
        raise ImageError(f"compiler {cc!r} not found: install gcc and libc6-dev") from exc
    out = cache_dir / "pause-3.9.tar"
    key = _key(source, cc_version, oci_arch().encode())
    if not _cached(out, key):
        files = build_layout(PAUSE_IMAGE, pause_entries(compile_pause(source, cc=cc)),
                             ImageConfig(entrypoint=("/pause",)))
        _write_cached(out, key, files)
        log.info("image_built", image=PAUSE_IMAGE, path=str(out))
    return out


def build_busybox(cache_dir: Path = DEFAULT_CACHE_DIR, *, busybox: Path = DEFAULT_BUSYBOX) -> Path:
    """Build (or reuse) the busybox image tarball from a static busybox binary."""
    if not busybox.exists():
        raise ImageError(f"{busybox} not found: install busybox-static")
    binary = busybox.read_bytes()
    out = cache_dir / "busybox-1.35.tar"
    key = _key(binary, oci_arch().encode())
    if not _cached(out, key):
        entries = busybox_entries(binary, busybox_applets(busybox))
        _write_cached(out, key, build_layout(BUSYBOX_IMAGE, entries, ImageConfig(cmd=("sh",))))
        log.info("image_built", image=BUSYBOX_IMAGE, path=str(out))
    return out


# Stand-ins for public images Kubernetes' documentation names, built from busybox so that its manifests run
# unchanged on a cluster with no way out (the lab registry serves them: registry.py). Each does what its
# namesake does in those examples: nginx serves /usr/share/nginx/html on port 80, redis and fluentd stay up, perl
# computes the digits of pi the `pi` Job asks for (with busybox's bc; any other perl program is refused).
NGINX_HTML = b"<html><body><h1>Welcome to nginx (kubelite's busybox stand-in)</h1></body></html>\n"
PERL_BPI = b"""#!/bin/sh
# kubelite's perl stand-in: runs the one program the Kubernetes documentation's `pi` Job gives,
#   perl -Mbignum=bpi -wle 'print bpi(N)'
# printing pi to N significant digits, computed by bc. Anything else is refused.
digits=""
for arg in "$@"; do
  case "$arg" in
    "print bpi("*")") digits=${arg#"print bpi("}; digits=${digits%")"} ;;
  esac
done
case "$digits" in
  ""|*[!0-9]*) echo "perl (kubelite stand-in): only -Mbignum=bpi -wle 'print bpi(N)' is supported" >&2; exit 2 ;;
esac
echo "scale=$((digits + 4)); 4*a(1)" | BC_LINE_LENGTH=0 bc -l | cut -c "1-$((digits + 1))"
"""
NGINX_CMD = ImageConfig(cmd=("httpd", "-f", "-p", "80", "-h", "/usr/share/nginx/html"))
STAND_INS: dict[str, tuple[str, ImageConfig]] = {
    "docker.io/library/nginx:latest": ("nginx", NGINX_CMD),
    # The tutorial "Run a Stateless Application Using a Deployment" moves from one to the other.
    "docker.io/library/nginx:1.14.2": ("nginx-1.14.2", NGINX_CMD),
    "docker.io/library/nginx:1.16.1": ("nginx-1.16.1", NGINX_CMD),
    "registry.k8s.io/nginx-slim:0.24": ("nginx-slim", NGINX_CMD),
    "docker.io/library/perl:5.34.0": ("perl", ImageConfig(cmd=("perl", "-v"))),
    "docker.io/library/busybox:1.28": ("busybox-1.28", ImageConfig(cmd=("sh",))),
    "quay.io/fluentd_elasticsearch/fluentd:v2.5.2": ("fluentd", ImageConfig(cmd=("sh", "-c",
                                                                                "exec sleep 2147483647"))),
    "docker.io/library/redis:latest": ("redis", ImageConfig(cmd=("sh", "-c", "exec sleep 2147483647"))),
    "registry.k8s.io/busybox:latest": ("busybox-k8s", ImageConfig(cmd=("sh",))),
}


def build_stand_ins(cache_dir: Path = DEFAULT_CACHE_DIR, *, busybox: Path = DEFAULT_BUSYBOX) -> dict[str, Path]:
    """Build (or reuse) the stand-in images; image name -> tarball."""
    if not busybox.exists():
        raise ImageError(f"{busybox} not found: install busybox-static")
    binary = busybox.read_bytes()
    out: dict[str, Path] = {}
    for name, (stem, config) in STAND_INS.items():
        path = cache_dir / f"standin-{stem}.tar"
        key = _key(binary, oci_arch().encode(), name.encode())
        if not _cached(path, key):
            entries = busybox_entries(binary, busybox_applets(busybox))
            if stem.startswith("nginx"):
                entries.append(Entry("/usr/share/nginx/html/index.html", data=NGINX_HTML))
            if stem == "perl":
                entries.append(Entry("/usr/bin/perl", data=PERL_BPI, mode=0o755))
            _write_cached(path, key, build_layout(name, entries, config))
            log.info("image_built", image=name, path=str(path))
        out[name] = path
    return out


def build_all(cache_dir: Path = DEFAULT_CACHE_DIR) -> dict[str, Path]:
    """Build every kubelite image (and the stand-ins); returns image name -> tarball."""
    return {PAUSE_IMAGE: build_pause(cache_dir), BUSYBOX_IMAGE: build_busybox(cache_dir),
            **build_stand_ins(cache_dir)}


def image_id(tarball: Path) -> str:
    """The image ID (its config blob's digest, as CRI reports it) of a one-image tarball built here."""
    with tarfile.open(tarball) as tar:
        index = json.loads(_member(tar, "index.json"))
        manifest = json.loads(_member(tar, "blobs/sha256/" + index["manifests"][0]["digest"].removeprefix("sha256:")))
    return str(manifest["config"]["digest"])


def bundle(tarballs: Mapping[str, Path], out: Path) -> Path:
    """The images of `tarballs` (name -> one-image tarball) in one layout tarball with their shared blobs once,
    so that a containerd takes them all in one `ctr images import`: eleven imports at once took a node about
    16 s of a lab's start. Rebuilt when one of them changes."""
    paths = [tarballs[name] for name in sorted(tarballs)]
    key = _key(*(p.read_bytes() for p in paths))
    if not _cached(out, key):
        manifests: list[object] = []
        blobs: dict[str, bytes] = {}
        for path in paths:
            with tarfile.open(path) as tar:
                manifests += json.loads(_member(tar, "index.json"))["manifests"]
                blobs.update({m.name: _member(tar, m.name) for m in tar.getmembers()
                              if m.isfile() and m.name.startswith("blobs/")})
        index = _json({"schemaVersion": 2, "mediaType": MEDIA_INDEX, "manifests": manifests})
        _write_cached(out, key, {"oci-layout": _json({"imageLayoutVersion": "1.0.0"}), "index.json": index,
                                 **dict(sorted(blobs.items()))})
    return out


def _member(tar: tarfile.TarFile, name: str) -> bytes:
    f = tar.extractfile(name)
    if f is None:
        raise ImageError(f"{tar.name}: {name} is not a file")
    return f.read()


async def import_image(tarball: Path, address: str, namespace: str = "k8s.io", *, timeout: float = 120.0) -> None:
    """Import an image tarball into a containerd (`ctr images import`).

    CRI only sees the k8s.io namespace, hence the default.
    """
    proc = await asyncio.create_subprocess_exec(
        "ctr", "-a", address, "-n", namespace, "images", "import", str(tarball),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    try:
        async with asyncio.timeout(timeout):
            out, _ = await proc.communicate()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise ImageError(f"ctr images import {tarball} timed out after {timeout}s") from None
    if proc.returncode != 0:
        raise ImageError(f"ctr images import {tarball} failed: {out.decode(errors='replace').strip()}")
    log.info("image_imported", tarball=str(tarball), address=address, namespace=namespace)
