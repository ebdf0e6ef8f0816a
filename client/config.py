"""Where the apiserver is and how to prove who we are: flags, then environment, then the config file.

The config file (`~/.kubelite/config.yaml`, or $KUBELITE_CONFIG, or a
component's --kubeconfig) holds named clusters and which one is current;
`kubelite up` and `kubelite bootstrap control-plane` write it. Each cluster
names its server, the cluster CA that signed the server's certificate, and
the user's certificate and key (kubeconfig's key names, as paths or as
`-data` holding base64 PEM), or a bearer token file:

    current: lab
    clusters:
      lab:
        server: unix:///run/kubelite/lab/api.sock
        certificate-authority: /root/.kubelite/lab/ca.crt
        client-certificate: /root/.kubelite/lab/admin.crt
        client-key: /root/.kubelite/lab/admin.key

`server` may list several apiservers, comma-separated (`10.250.0.2:6443,10.250.0.3:6443`, or
`unix:///run/a.sock,unix:///run/b.sock`): the channel then holds on to one of them and moves to the
next by itself when that one goes away (grpc's pick_first over the list; see `grpc_target`).

Without a CA a client does not connect: plaintext is a test-only switch
(`insecure-plaintext: true`), never a fallback.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from pathlib import Path

import yaml

DEFAULT_SERVER = "127.0.0.1:6443"
DEFAULT_CLUSTER = "kubelite"  # the name `kubelite up` gives a local cluster
# The name the apiserver's certificate carries for clients that reach it over a unix socket.
LOCAL_NAME = "localhost"
# The name every apiserver's certificate carries: what a client of several apiservers checks on each.
SHARED_NAME = "kubernetes.default.svc"


class ConfigError(ValueError):
    """A config file or connection setting that cannot be used; the message names it."""


@dataclass(frozen=True)
class ClientConfig:
    server: str = DEFAULT_SERVER  # host:port or unix:///path
    ca_file: str = ""  # the cluster CA: verifies the apiserver's certificate
    cert_file: str = ""  # this client's certificate and key: who it is
    key_file: str = ""
    ca_data: bytes = b""  # the same, inline (PEM)
    cert_data: bytes = b""
    key_data: bytes = b""
    token_file: str = ""  # a bearer token, read from this file, instead of a certificate
    server_name: str = ""  # the name to check on the apiserver's certificate (default: the host in `server`)
    insecure_plaintext: bool = False  # test-only: no TLS at all
    cluster: str = ""
    log_dir: str = ""  # a local cluster's component logs, as `kubelite up` recorded them
    impersonate_user: str = ""  # act as this user (`--as`; the caller needs the impersonate verb)
    impersonate_groups: tuple[str, ...] = ()  # and in these groups (`--as-group`)

    @property
    def tls(self) -> bool:
        return not self.insecure_plaintext

    def token(self) -> str:
        """The bearer token from token_file ("" without one); an empty file is an error."""
        if not self.token_file:
            return ""
        try:
            token = Path(self.token_file).read_text().strip()
        except OSError as e:
            raise ConfigError(f"token file {self.token_file}: {e.strerror}") from None
        if not token:
            raise ConfigError(f"token file {self.token_file} is empty")
        return token


def server_endpoints(server: str) -> list[str]:
    """The apiservers a `server` setting lists: `a:6443,b:6443` -> ["a:6443", "b:6443"] (order kept)."""
    out = [s.strip() for s in server.split(",")]
    if not server.strip() or "" in out:
        raise ConfigError(f"server {server!r}: an empty apiserver address in the list")
    return list(dict.fromkeys(out))


def grpc_target(server: str) -> str:
    """The gRPC target for a `server` setting: itself for one apiserver; for several, one target naming every
    address (`ipv4:a:6443,b:6443` or `unix:/a.sock,/b.sock`), over which grpc's default pick_first stays on one
    apiserver (so a client reads its own writes, as with one) and moves on when it goes away."""
    endpoints = server_endpoints(server)
    if len(endpoints) == 1:
        return endpoints[0]
    if all(e.startswith("unix:") for e in endpoints):
        paths = [e.removeprefix("unix://") if e.startswith("unix://") else e.removeprefix("unix:") for e in endpoints]
        return "unix:" + ",".join(paths)
    if any(e.startswith("unix:") for e in endpoints):
        raise ConfigError(f"server {server!r}: list either unix sockets or host:port addresses, not both")
    for e in endpoints:
        host, _, port = e.rpartition(":")
        if not port.isdigit() or not _is_ipv4(host):
            raise ConfigError(f"server {server!r}: {e!r} is not an IPv4 address:port (a list of apiservers takes "
                              f"addresses, as kubelets and the CLI are given them)")
    return "ipv4:" + ",".join(endpoints)


def _is_ipv4(host: str) -> bool:
    import ipaddress

    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        return False
    return True


def config_path() -> Path:
    return Path(os.environ.get("KUBELITE_CONFIG", str(Path.home() / ".kubelite" / "config.yaml")))


def credentials_dir(cluster: str, path: Path | None = None) -> Path:
    """Where a cluster's client certificate, key and CA live beside the config file."""
    return (path or config_path()).parent / cluster


def read_file(path: Path | None = None) -> dict:
    path = path or config_path()
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        return {}
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError(f"config file {path}: {e}") from None
    return data if isinstance(data, dict) else {}


def write_file(data: dict, path: Path | None = None) -> None:
    from client.pki import write_private

    path = path or config_path()
    write_private(path, yaml.safe_dump(data, sort_keys=False).encode())


def set_cluster(name: str, *, server: str, ca_file: str = "", cert_file: str = "", key_file: str = "",
                token_file: str = "", log_dir: str = "", insecure_plaintext: bool = False,
                current: bool = True, path: Path | None = None, rest_server: str = "") -> None:
    """Add or replace a named cluster in the config file (`log_dir`: a local cluster's component logs;
    `rest_server`: the URL of its REST API, for `kubelite kubeconfig`)."""
    data = read_file(path)
    clusters = data.setdefault("clusters", {})
    entry: dict[str, object] = {"server": server}
    for key, value in (("certificate-authority", ca_file), ("client-certificate", cert_file),
                       ("client-key", key_file), ("token-file", token_file), ("logs", log_dir),
                       ("rest-server", rest_server)):
        if value:
            entry[key] = value
    if insecure_plaintext:
        entry["insecure-plaintext"] = True
    clusters[name] = entry
    if current or not data.get("current"):
        data["current"] = name
    write_file(data, path)


def remove_cluster(name: str, path: Path | None = None) -> None:
    data = read_file(path)
    clusters = data.get("clusters", {})
    if name in clusters:
        del clusters[name]
        if data.get("current") == name:
            data["current"] = next(iter(clusters), "")
        write_file(data, path)


def _data(entry: dict, key: str, name: str) -> bytes:
    value = entry.get(f"{key}-data")
    if not value:
        return b""
    try:
        return base64.b64decode(value, validate=True)
    except (ValueError, TypeError):
        raise ConfigError(f"cluster {name!r}: {key}-data is not base64") from None


def _path(entry: dict, key: str, base: Path) -> str:
    value = entry.get(key) or ""
    if value and not Path(value).is_absolute():
        value = str(base / value)  # relative to the config file, as kubeconfig's
    return value


def resolve(server: str | None = None, *, ca_file: str | None = None, cert_file: str | None = None,
            key_file: str | None = None, token_file: str | None = None, cluster: str | None = None,
            kubeconfig: str | None = None) -> ClientConfig:
    """The effective client config: explicit values win, then KUBELITE_* variables, then the file.

    A `server` given on its own keeps the cluster's credentials (as kubectl's --server does)."""
    path = Path(kubeconfig) if kubeconfig else config_path()
    data = read_file(path)
    name = cluster or os.environ.get("KUBELITE_CLUSTER") or data.get("current", "")
    clusters = data.get("clusters") or {}
    if cluster and cluster not in clusters and not server:
        known = ", ".join(sorted(clusters)) or "none"
        raise ConfigError(f"cluster {cluster!r} is not in {path} (known: {known})")
    entry = clusters.get(name, {}) if name else {}
    if not isinstance(entry, dict):
        raise ConfigError(f"config file {path}: cluster {name!r} is not a mapping")
    base = path.parent

    def pick(given: str | None, env: str, key: str) -> str:
        if given is not None:
            return given
        return os.environ.get(env) or _path(entry, key, base)

    return ClientConfig(
        server=server or os.environ.get("KUBELITE_SERVER") or entry.get("server") or DEFAULT_SERVER,
        ca_file=pick(ca_file, "KUBELITE_CA", "certificate-authority"),
        cert_file=pick(cert_file, "KUBELITE_CLIENT_CERTIFICATE", "client-certificate"),
        key_file=pick(key_file, "KUBELITE_CLIENT_KEY", "client-key"),
        ca_data=_data(entry, "certificate-authority", name),
        cert_data=_data(entry, "client-certificate", name),
        key_data=_data(entry, "client-key", name),
        token_file=pick(token_file, "KUBELITE_TOKEN_FILE", "token-file"),
        server_name=entry.get("tls-server-name", ""),
        insecure_plaintext=bool(entry.get("insecure-plaintext", False)),
        cluster=name,
        log_dir=entry.get("logs", ""),
    )


def current_cluster(name: str | None = None) -> str:
    """The cluster a command acts on, as kubectl's current context: `name` if given, then $KUBELITE_CLUSTER
    (the global --cluster), then the config file's current cluster, then the default name."""
    return name or os.environ.get("KUBELITE_CLUSTER") or read_file().get("current") or DEFAULT_CLUSTER
