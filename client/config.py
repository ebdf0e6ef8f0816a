"""Where the apiserver is and how to reach it: flags, then environment, then the config file.

The config file (`~/.kubelite/config.yaml`, or $KUBELITE_CONFIG) holds named
clusters and which one is current; `kubelite up` writes it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import yaml

DEFAULT_SERVER = "127.0.0.1:6443"
DEFAULT_CLUSTER = "kubelite"  # the name `kubelite up` gives a local cluster


@dataclass(frozen=True)
class ClientConfig:
    server: str = DEFAULT_SERVER  # host:port or unix:///path
    token: str = ""
    ca_file: str = ""  # TLS when set
    cluster: str = ""
    log_dir: str = ""  # a local cluster's component logs, as `kubelite up` recorded them


def config_path() -> Path:
    return Path(os.environ.get("KUBELITE_CONFIG", str(Path.home() / ".kubelite" / "config.yaml")))


def read_file(path: Path | None = None) -> dict:
    path = path or config_path()
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        return {}
    return data if isinstance(data, dict) else {}


def write_file(data: dict, path: Path | None = None) -> None:
    path = path or config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(data, sort_keys=False))
    tmp.chmod(0o600)
    tmp.replace(path)


def set_cluster(name: str, *, server: str, token: str = "", ca_file: str = "", log_dir: str = "",
                current: bool = True) -> None:
    """Add or replace a named cluster in the config file (`log_dir`: a local cluster's component logs)."""
    data = read_file()
    clusters = data.setdefault("clusters", {})
    clusters[name] = {"server": server, "token": token, "ca": ca_file}
    if log_dir:
        clusters[name]["logs"] = log_dir
    if current or not data.get("current"):
        data["current"] = name
    write_file(data)


def remove_cluster(name: str) -> None:
    data = read_file()
    clusters = data.get("clusters", {})
    if name in clusters:
        del clusters[name]
        if data.get("current") == name:
            data["current"] = next(iter(clusters), "")
        write_file(data)


def resolve(server: str | None = None, *, token: str | None = None, ca_file: str | None = None,
            cluster: str | None = None) -> ClientConfig:
    """The effective client config: explicit values win, then KUBELITE_* variables, then the file."""
    data = read_file()
    name = cluster or os.environ.get("KUBELITE_CLUSTER") or data.get("current", "")
    entry = data.get("clusters", {}).get(name, {}) if name else {}
    return ClientConfig(
        server=server or os.environ.get("KUBELITE_SERVER") or entry.get("server") or DEFAULT_SERVER,
        token=token if token is not None else os.environ.get("KUBELITE_TOKEN", entry.get("token", "")),
        ca_file=ca_file if ca_file is not None else os.environ.get("KUBELITE_CA", entry.get("ca", "")),
        cluster=name,
        log_dir=entry.get("logs", ""),
    )


def current_cluster(name: str | None = None) -> str:
    """The cluster a command acts on, as kubectl's current context: `name` if given, then $KUBELITE_CLUSTER
    (the global --cluster), then the config file's current cluster, then the default name."""
    return name or os.environ.get("KUBELITE_CLUSTER") or read_file().get("current") or DEFAULT_CLUSTER
