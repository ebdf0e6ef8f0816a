"""A read-only OCI registry over the image tarballs, so that pulls work in a cluster with no way out.

Kubernetes' manifests name public images (`nginx`, `redis`,
`registry.k8s.io/busybox`), usually with no tag, so their pull policy is
Always and the kubelet asks the runtime to pull them, which means asking a
registry. Each node's containerd is configured with this registry as the
mirror of docker.io and registry.k8s.io (containerd.py); it serves the images
`kubelite images build` made (kubelite's own and the stand-ins of images.py),
by the names their tarballs carry, and nothing else: any other image is
`unknown` here, as it would be offline.

Served: GET /v2/, GET|HEAD /v2/<name>/manifests/<tag or digest>, GET|HEAD
/v2/<name>/blobs/<digest>, for the repository containerd asks for under the
registry it mirrors (`?ns=docker.io` and `library/nginx`).
"""

from __future__ import annotations

import json
import tarfile
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import structlog

log = structlog.get_logger(component="registry")

PORT = 5000
MIRRORED = ("docker.io", "registry.k8s.io", "quay.io")


def split_name(name: str) -> tuple[str, str, str]:
    """An image name as (registry, repository, tag): `nginx` -> (docker.io, library/nginx, latest)."""
    ref, _, digest = name.partition("@")
    last = ref.rsplit("/", 1)[-1]
    tag = ref.rsplit(":", 1)[1] if ":" in last else "latest"
    repo = ref[: -len(tag) - 1] if ":" in last else ref
    first = repo.split("/", 1)[0]
    if "/" not in repo or ("." not in first and ":" not in first and first != "localhost"):
        host, path = "docker.io", repo
    else:
        host, path = first, repo.split("/", 1)[1]
    if host == "docker.io" and "/" not in path:
        path = f"library/{path}"
    return host, path, digest or tag


@dataclass
class _Store:
    """Manifests by (registry, repository, tag), and every blob's tarball, from the image directory."""

    root: Path
    manifests: dict[tuple[str, str, str], str] = field(default_factory=dict)  # -> manifest digest
    blobs: dict[str, Path] = field(default_factory=dict)  # digest -> tarball
    media: dict[str, str] = field(default_factory=dict)  # manifest digest -> media type
    lock: threading.Lock = field(default_factory=threading.Lock)
    seen: dict[Path, float] = field(default_factory=dict)

    def refresh(self) -> None:
        with self.lock:
            for tarball in sorted(self.root.glob("*.tar")):
                mtime = tarball.stat().st_mtime
                if self.seen.get(tarball) == mtime:
                    continue
                try:
                    with tarfile.open(tarball) as tf:
                        index = json.loads(tf.extractfile("index.json").read())  # type: ignore[union-attr]
                        names = tf.getnames()
                except (OSError, tarfile.TarError, KeyError, ValueError) as e:
                    log.warning("image_tarball_skipped", tarball=str(tarball), error=str(e))
                    continue
                for n in names:
                    if n.startswith("blobs/sha256/"):
                        self.blobs["sha256:" + n.rsplit("/", 1)[1]] = tarball
                for m in index.get("manifests", []):
                    name = m.get("annotations", {}).get("io.containerd.image.name")
                    if name:
                        self.manifests[split_name(name)] = m["digest"]
                        self.media[m["digest"]] = m.get("mediaType", "application/vnd.oci.image.manifest.v1+json")
                self.seen[tarball] = mtime

    def blob(self, digest: str) -> bytes | None:
        tarball = self.blobs.get(digest)
        if tarball is None:
            return None
        with tarfile.open(tarball) as tf:
            f = tf.extractfile(f"blobs/sha256/{digest.removeprefix('sha256:')}")
            return f.read() if f is not None else None


def make_handler(store: _Store) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            log.debug("registry_request", line=format % args)

        def _send(self, code: int, body: bytes, ctype: str = "application/json", digest: str = "") -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Docker-Distribution-API-Version", "registry/2.0")
            if digest:
                self.send_header("Docker-Content-Digest", digest)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _unknown(self, what: str, name: str) -> None:
            body = json.dumps({"errors": [{"code": what, "message": f"{name} is not served by this registry"}]})
            self._send(404, body.encode())

        def do_HEAD(self) -> None:
            self.do_GET()

        def do_GET(self) -> None:
            url = urlparse(self.path)
            host = parse_qs(url.query).get("ns", ["docker.io"])[0]
            parts = url.path.strip("/").split("/")
            if parts == ["v2"]:
                self._send(200, b"{}")
                return
            if len(parts) < 4 or parts[0] != "v2" or parts[-2] not in ("manifests", "blobs"):
                self._unknown("NAME_UNKNOWN", url.path)
                return
            repo, kind, ref = "/".join(parts[1:-2]), parts[-2], parts[-1]
            store.refresh()
            if kind == "manifests":
                digest = ref if ref.startswith("sha256:") else store.manifests.get((host, repo, ref), "")
                data = store.blob(digest) if digest else None
                if data is None:
                    self._unknown("MANIFEST_UNKNOWN", f"{host}/{repo}:{ref}")
                    return
                self._send(200, data, store.media.get(digest, "application/vnd.oci.image.manifest.v1+json"), digest)
                return
            data = store.blob(ref)
            if data is None:
                self._unknown("BLOB_UNKNOWN", ref)
                return
            self._send(200, data, "application/octet-stream", ref)

    return Handler


def serve(image_dir: Path, host: str, port: int = PORT) -> ThreadingHTTPServer:
    """A started registry server (in a thread); `shutdown()` stops it."""
    store = _Store(Path(image_dir))
    store.refresh()
    server = ThreadingHTTPServer((host, port), make_handler(store))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="registry", daemon=True).start()
    log.info("registry_started", listen=f"{host}:{server.server_address[1]}", images=len(store.manifests))
    return server


def hosts_toml(mirror: str, upstream: str) -> str:
    """containerd's hosts.toml that sends `upstream`'s pulls to `mirror` (http://host:port)."""
    return f'server = "https://{upstream}"\n\n[host."{mirror}"]\n  capabilities = ["pull", "resolve"]\n'
