"""A read-only OCI registry over the image tarballs, so that pulls work in a cluster with no way out.

Kubernetes' manifests name public images (`nginx`, `redis`,
`registry.k8s.io/busybox`), usually with no tag, so their pull policy is
Always and the kubelet asks the runtime to pull them, which means asking a
registry. Each node's containerd is configured with this registry as the
mirror of docker.io and registry.k8s.io (containerd.py); it serves the images
`kubelite images build` made (kubelite's own and the stand-ins of images.py),
by the names their tarballs carry, and nothing else: any other image is
`unknown` here, as it would be offline.

Over mutual TLS (`serve(..., tls=RegistryTLS(...))`, what `bootstrap control-plane` runs): the registry's
certificate is the cluster CA's, and only a client with a certificate from that CA (a node's containerd,
presenting its kubelet's certificate) completes the handshake.

Served: GET /v2/, GET|HEAD /v2/<name>/manifests/<tag or digest>, GET|HEAD
/v2/<name>/blobs/<digest>, for the repository containerd asks for under the
registry it mirrors (`?ns=docker.io` and `library/nginx`).
"""

from __future__ import annotations

import json
import os
import ssl
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


@dataclass(frozen=True)
class RegistryTLS:
    """The registry's serving certificate and key, and the CA its clients' certificates must come from."""

    cert_file: str
    key_file: str
    client_ca_file: str

    def context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(self.cert_file, self.key_file)
        ctx.load_verify_locations(self.client_ca_file)
        ctx.verify_mode = ssl.CERT_REQUIRED
        return ctx


class _TLSServer(ThreadingHTTPServer):
    """Each connection's handshake runs in its own handler thread, so a silent client holds up no other; a
    renewed certificate (`kubelite certs renew`) is taken at the next connection, without a restart."""

    daemon_threads = True
    tls: RegistryTLS | None = None
    _context: ssl.SSLContext | None = None
    _stamp: tuple[int, ...] = ()
    _lock = threading.Lock()

    def tls_context(self) -> ssl.SSLContext:
        assert self.tls is not None
        files = (self.tls.cert_file, self.tls.key_file, self.tls.client_ca_file)
        stamp = tuple(os.stat(f).st_mtime_ns for f in files)
        with self._lock:
            if self._context is None or stamp != self._stamp:
                self._context, self._stamp = self.tls.context(), stamp
            return self._context

    def finish_request(self, request, client_address) -> None:  # type: ignore[no-untyped-def]
        if self.tls is not None:
            try:
                request = self.tls_context().wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError) as e:
                log.info("registry_handshake_refused", client=client_address[0], error=str(e))
                return
        super().finish_request(request, client_address)


def serve(image_dir: Path, host: str, port: int = PORT, *, tls: RegistryTLS | None = None) -> ThreadingHTTPServer:
    """A started registry server (in a thread), over mutual TLS when `tls` is given; `shutdown()` stops it."""
    store = _Store(Path(image_dir))
    store.refresh()
    server = _TLSServer((host, port), make_handler(store))
    if tls is not None:
        server.tls = tls
        server.tls_context()  # unreadable files fail here, at start
    threading.Thread(target=server.serve_forever, name="registry", daemon=True).start()
    log.info("registry_started", listen=f"{host}:{server.server_address[1]}", images=len(store.manifests),
             tls=tls is not None)
    return server


@dataclass(frozen=True)
class MirrorTLS:
    """What containerd presents to the registry (a node's certificate) and the CA it checks the registry's by."""

    ca_file: str
    cert_file: str
    key_file: str


def hosts_toml(mirror: str, upstream: str, tls: MirrorTLS | None = None) -> str:
    """containerd's hosts.toml that sends `upstream`'s pulls to `mirror` (https://host:port with `tls`, else
    http://host:port)."""
    text = f'server = "https://{upstream}"\n\n[host."{mirror}"]\n  capabilities = ["pull", "resolve"]\n'
    if tls is not None:
        text += f'  ca = "{tls.ca_file}"\n  client = [["{tls.cert_file}", "{tls.key_file}"]]\n'
    return text
