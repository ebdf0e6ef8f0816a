"""What every bench script shares: ports, CPU and memory readings, and the processes of a run.

`Processes` starts etcd, `kubelite apiserver` and any other kubelite daemon as
child processes of the benchmark, each logging to `<workdir>/<name>.log`, and
stops them newest first. Each script adds only what it measures.

Every link is mutual TLS, as in a cluster: `Processes` makes a CA and the
certificates under `<workdir>/pki` and a config file the daemons it starts
read (the admin's credentials). `tls=False` is the test-only plaintext switch
(`kubelite apiserver --insecure-plaintext`), for the baseline TLS is measured
against.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import yaml

from apiserver.storage import limits
from apiserver.storage.etcd import EtcdConnection, EtcdTLS, parse_endpoints
from client import pki
from client.api import Client
from client.config import ClientConfig
from deploy.node import certs

BIN = Path(sys.executable).parent
GiB = 1024**3


def kubelite() -> list[str]:
    """The kubelite command of this virtualenv (or of PATH)."""
    exe = BIN / "kubelite"
    if exe.exists():
        return [str(exe)]
    found = shutil.which("kubelite")
    return [found] if found else [sys.executable, "-m", "cli.main"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process (and its threads) used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def percentile(values: list[float], p: float) -> float:
    """The p-th percentile by nearest rank (nan for no values)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


class Processes:
    """The daemons of one benchmark run."""

    def __init__(self, workdir: Path, *, env: dict[str, str] | None = None, new_session: bool = False,
                 tls: bool = True) -> None:
        self.workdir = workdir
        self.tls = tls
        self.pki = certs.ensure_control_plane(workdir / "pki", addresses=["127.0.0.1"], service_ip="10.96.0.1",
                                              hostname="") if tls else None
        # A config file of the run's own (the admin, or the plaintext switch): a daemon never picks up the user's
        # current cluster. Daemons get --server; the file says who they are.
        config = workdir / "config.yaml"
        entry: dict[str, object] = {"server": "127.0.0.1:1"}
        if self.pki is not None:
            entry.update({"certificate-authority": str(self.pki.crt(certs.CA)),
                          "client-certificate": str(self.pki.crt("admin")),
                          "client-key": str(self.pki.key("admin"))})
        else:
            entry["insecure-plaintext"] = True
        pki.write_private(config, yaml.safe_dump({"current": "bench", "clusters": {"bench": entry}}).encode())
        self.env = {**os.environ, "KUBELITE_CONFIG": str(config), **(env or {})}
        self.new_session = new_session
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.etcd_url = ""  # once started
        self.address = ""  # the apiserver's, once started
        self.rest_url = ""  # its REST API's, when started with rest=True

    def conn(self, address: str = "") -> ClientConfig:
        """The admin's client config for the apiserver (or `address`)."""
        server = address or self.address
        if self.pki is None:
            return ClientConfig(server=server, insecure_plaintext=True)
        return ClientConfig(server=server, ca_file=str(self.pki.crt(certs.CA)), cert_file=str(self.pki.crt("admin")),
                            key_file=str(self.pki.key("admin")))

    def user_conn(self, user: str, *groups: str) -> ClientConfig:
        """A client config for `user` in `groups`: a certificate signed by this run's CA (TLS runs only)."""
        assert self.pki is not None
        crt, key = self.pki.dir / f"user-{user}.crt", self.pki.dir / f"user-{user}.key"
        if not crt.exists():
            cert, k = pki.issue_pair(self.pki.ca(), pki.Request(pki.Identity(user, groups)))
            pki.write_pair(self.pki.dir, f"user-{user}", cert, k)
        return ClientConfig(server=self.address, ca_file=str(self.pki.crt(certs.CA)), cert_file=str(crt),
                            key_file=str(key))

    def client(self, address: str = "") -> Client:
        return Client(self.conn(address))

    def etcd_tls(self) -> EtcdTLS | None:
        """The apiserver's etcd client certificate (None without TLS)."""
        if self.pki is None:
            return None
        return EtcdTLS(str(self.pki.crt(certs.ETCD_CA)), str(self.pki.crt("apiserver-etcd-client")),
                       str(self.pki.key("apiserver-etcd-client")))

    def etcd_connection(self) -> EtcdConnection:
        """A raw connection to this run's etcd (for baselines and clean-ups)."""
        ((host, port),) = parse_endpoints(self.etcd_url)
        return EtcdConnection(host, port, self.etcd_tls())

    def kubelet_flags(self, node: str, address: str = "127.0.0.1") -> list[str]:
        """A kubelet's credentials (client and serving certificates for `node`), or the plaintext switch."""
        if self.pki is None:
            return ["--insecure-plaintext"]
        ca = self.pki.ca()
        ident = pki.Identity(f"system:node:{node}", ("system:nodes",))
        directory = self.workdir / "pki" / "nodes" / node
        pki.private_dir(directory)
        client, serving = (pki.write_pair(directory, name, *pki.issue_pair(ca, request))
                           for name, request in (("kubelet", pki.Request(ident)),
                                                 ("kubelet-serving", pki.Request(ident, (pki.SERVER,), dns=(node,),
                                                                                 ips=(address,)))))
        return ["--certificate-authority", str(self.pki.crt(certs.CA)), "--client-certificate", str(client[0]),
                "--client-key", str(client[1]), "--tls-cert-file", str(serving[0]),
                "--tls-private-key-file", str(serving[1]), "--client-ca-file", str(self.pki.crt(certs.CA))]

    def spawn(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        log = (self.workdir / f"{name}.log").open("ab")
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=self.env,
                                start_new_session=self.new_session)
        log.close()  # the child holds its own copy
        self.procs[name] = proc
        return proc

    def start_etcd(self, *, quota: int = 4 * GiB) -> str:
        """A one-member etcd on free loopback ports; its client URL."""
        cport, pport = free_port(), free_port()
        url = f"{'https' if self.pki is not None else 'http'}://127.0.0.1:{cport}"
        etcd = shutil.which("etcd") or "/usr/bin/etcd"
        tls_flags = [] if self.pki is None else [
            "--cert-file", str(self.pki.crt("etcd/server")), "--key-file", str(self.pki.key("etcd/server")),
            "--trusted-ca-file", str(self.pki.crt(certs.ETCD_CA)), "--client-cert-auth"]
        self.spawn("etcd", [etcd, "--name", "bench", "--data-dir", str(self.workdir / "etcd"), *tls_flags,
                            "--listen-client-urls", url, "--advertise-client-urls", url,
                            "--listen-peer-urls", f"http://127.0.0.1:{pport}",
                            "--initial-advertise-peer-urls", f"http://127.0.0.1:{pport}",
                            "--initial-cluster", f"bench=http://127.0.0.1:{pport}", "--log-level", "error",
                            "--quota-backend-bytes", str(quota), *limits.etcd_flags()])
        wait_port(cport)
        self.etcd_url = url
        return url

    def start_apiserver(self, etcd_url: str, *, log_level: str = "warning", wait: bool = True,
                        extra: list[str] | None = None, rest: bool = False, name: str = "apiserver") -> str:
        """`kubelite apiserver` over `etcd_url` on a free port (with `extra` flags); its address (host:port), once
        it listens. `rest`: also Kubernetes' REST API, on another free port (its URL in `rest_url`). Another
        `name` starts a second apiserver beside the first (`address` stays the first's)."""
        port = free_port()
        address = f"127.0.0.1:{port}"
        rest_flags: list[str] = []
        if rest:
            rest_port = free_port()
            rest_flags = ["--rest-listen", f"127.0.0.1:{rest_port}"]
            self.rest_url = f"{'http' if self.pki is None else 'https'}://127.0.0.1:{rest_port}"
        self.spawn(name, [*kubelite(), "apiserver", "--etcd-servers", etcd_url, "--listen", address,
                          *rest_flags, *self.apiserver_flags(), "--log-level", log_level, *(extra or [])])
        if wait:
            wait_port(port)
        if name == "apiserver":
            self.address = address
        return address

    def apiserver_flags(self) -> list[str]:
        """TLS everywhere under this run's CA, or the test-only plaintext switch."""
        if self.pki is None:
            # Pods still get their ServiceAccount tokens: a key of the run's own signs them.
            sa = certs.Pki(self.workdir / "sa")
            pki.private_dir(sa.dir)
            certs.ensure_service_account_key(sa)
            return ["--insecure-plaintext", "--service-account-key-file", str(sa.sa_pub),
                    "--service-account-signing-key-file", str(sa.sa_key)]
        p, ca = self.pki, str(self.pki.crt(certs.CA))
        return ["--tls-cert-file", str(p.crt("apiserver")), "--tls-private-key-file", str(p.key("apiserver")),
                "--client-ca-file", ca, "--etcd-cafile", str(p.crt(certs.ETCD_CA)),
                "--etcd-certfile", str(p.crt("apiserver-etcd-client")),
                "--etcd-keyfile", str(p.key("apiserver-etcd-client")), "--kubelet-certificate-authority", ca,
                "--kubelet-client-certificate", str(p.crt("apiserver-kubelet-client")),
                "--kubelet-client-key", str(p.key("apiserver-kubelet-client")),
                "--cluster-signing-cert-file", ca, "--cluster-signing-key-file", str(p.key(certs.CA)),
                "--service-account-key-file", str(p.sa_pub), "--service-account-signing-key-file", str(p.sa_key)]

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        """Another kubelite daemon: `kubelite ARGS...` (scheduler, controller-manager, kubelet, hollow-nodes)."""
        return self.spawn(name, [*kubelite(), *args])

    def cpu(self) -> dict[str, float]:
        out = {}
        for name, p in self.procs.items():
            with contextlib.suppress(OSError):
                out[name] = round(cpu_seconds(p.pid), 1)
        return out

    def stop(self, name: str, timeout: float = 20.0) -> None:
        proc = self.procs.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def stop_all(self) -> None:
        """Newest first: clients before the apiserver, the apiserver before etcd."""
        for name in reversed(list(self.procs)):
            self.stop(name)
