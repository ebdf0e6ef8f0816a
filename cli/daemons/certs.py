"""`kubelite certs check-expiration` and `kubelite certs renew`: the certificates on this machine.

For a local cluster (the config file's current one, or --name) that is its
control plane's certificates and every node's; on a machine set up with
`kubelite bootstrap`, /var/lib/kubelite/control-plane/pki and
/var/lib/kubelite/node/pki. Renewing re-issues a certificate with its own
key, subject and names, signed by the CA that signed it; whatever uses it
takes the new one at its next connection, without a restart. A node's
certificates are renewed by its kubelet on its own (at 80% of their
lifetime); here only where the CA's key is (the lab, a control plane).
"""

from __future__ import annotations

import datetime
import sys
from dataclasses import dataclass
from pathlib import Path

import click

from cli import printers
from cli.pods import parse_duration

HOST_DIRS = (Path("/var/lib/kubelite/control-plane/pki"), Path("/var/lib/kubelite/node/pki"))


@dataclass(frozen=True)
class Place:
    """A directory of certificates and how its entries are named (`n1/kubelet`, `apiserver`, ...)."""

    dir: Path
    prefix: str = ""
    ca_dir: Path | None = None  # where the CA that signs its certificates lives, if on this machine


def lab_places(name: str) -> list[Place]:
    from deploy.lab.cluster import control_plane_spec, find_running, node_dir, pki_dir

    running = find_running(name)
    if running is None:
        return []
    plan = running.plan
    cp = pki_dir(plan)
    places = [Place(cp, ca_dir=cp)]
    # Other control-plane machines hold copies of the CAs and their own certificates: `cp2/apiserver`, ...
    for member in plan.control_planes[1:]:
        other = control_plane_spec(plan, role=member.role).pki.dir
        if other.is_dir():
            places.append(Place(other, f"{member.role}/", other))
    nodes_root = node_dir(plan, "x").parent
    if nodes_root.exists():
        places += [Place(d / "pki", f"{d.name}/", cp) for d in sorted(nodes_root.iterdir()) if (d / "pki").is_dir()]
    return places


def host_places() -> list[Place]:
    cp, node = HOST_DIRS
    out = []
    if cp.is_dir():
        out.append(Place(cp, ca_dir=cp))
    if node.is_dir():
        out.append(Place(node, "node/", cp if (cp / "ca.key").exists() else None))
    return out


def places_for(name: str | None) -> list[Place]:
    """The given local cluster's, else the current one's if it runs here, else this host's."""
    from client.config import current_cluster

    if name:
        found = lab_places(name)
        if not found:
            raise click.UsageError(f"cluster {name!r} is not running on this machine")
        return found
    return lab_places(current_cluster()) or host_places()


def rows(places: list[Place]) -> list[list[str]]:
    """One row per certificate: NAME, SUBJECT, GROUPS, EXPIRES, RESIDUAL, SIGNED BY."""
    from client import pki
    from deploy.node import certs

    out = []
    for place in places:
        for found in certs.find(place.dir):
            name = place.prefix + found.path.relative_to(place.dir).with_suffix("").as_posix()
            if found.info is None:
                out.append([name, f"<unreadable: {found.error}>", "", "", "", ""])
                continue
            info = found.info
            out.append([name, info.identity.user, ",".join(info.identity.groups) or "<none>",
                        info.not_after.strftime("%Y-%m-%d %H:%M:%S UTC"), pki.human_duration(info.residual()),
                        "self (CA)" if info.is_ca and info.issuer == info.identity.user else info.issuer])
    return out


HEADERS = ["CERTIFICATE", "SUBJECT", "GROUPS", "EXPIRES", "RESIDUAL", "SIGNED BY"]


def table(places: list[Place]) -> str:
    return printers.table(rows(places), HEADERS) or "no certificates found"


@click.group()
def certs() -> None:
    """List and renew the certificates of a local cluster or of this machine."""


@certs.command("check-expiration")
@click.option("--name", default=None, help="local cluster (default: the current one, else this machine's)")
def check_expiration(name: str | None) -> None:
    """Every certificate with its subject, expiry and time left."""
    places = places_for(name)
    if not places:
        click.echo("error: no certificates here: no local cluster runs, and this machine was not set up with "
                   "`kubelite bootstrap`", err=True)
        sys.exit(1)
    click.echo(table(places))


@certs.command("renew")
@click.argument("names", nargs=-1)
@click.option("--name", "cluster", default=None, help="local cluster (default: the current one, else this machine's)")
@click.option("--lifetime", default="8760h", show_default=True, help="new lifetime, e.g. 8760h")
def renew(names: tuple[str, ...], cluster: str | None, lifetime: str) -> None:
    """Renew certificates (NAMES as check-expiration lists them, or `all`), each with its own key."""
    from client import pki
    from deploy.node import certs as cert_files

    if not names:
        raise click.UsageError("name the certificates to renew (as check-expiration lists them), or `all`")
    seconds = parse_duration(lifetime)
    if seconds <= 0:
        raise click.BadParameter("must be positive", param_hint="--lifetime")
    places = places_for(cluster)
    wanted = set(names) - {"all"}
    done: list[str] = []
    known: list[str] = []
    for place in places:
        for found in cert_files.find(place.dir):
            rel = found.path.relative_to(place.dir).with_suffix("").as_posix()
            label = place.prefix + rel
            if found.info is None or found.info.is_ca:
                continue  # CAs are not renewed here (kubeadm neither): a new CA is a new cluster
            known.append(label)
            if wanted and label not in wanted:
                continue
            if place.ca_dir is None:
                click.echo(f"error: {label}: the CA's key is not on this machine; the kubelet renews its node's "
                           f"certificates itself", err=True)
                sys.exit(1)
            signer = cert_files.signer_of(place.dir, found.path) if place.ca_dir == place.dir else cert_files.CA
            ca = cert_files.Pki(place.ca_dir).ca(signer)
            info = cert_files.renew_file(ca, found.path, found.path.with_suffix(".key"),
                                         lifetime=datetime.timedelta(seconds=seconds))
            done.append(label)
            click.echo(f"{label}: renewed, expires {info.not_after:%Y-%m-%d %H:%M:%S} UTC "
                       f"({pki.human_duration(info.residual())})")
    missing = sorted(wanted - set(known))
    if missing:
        click.echo(f"error: no certificate named {', '.join(missing)} (known: {', '.join(known) or 'none'})", err=True)
        sys.exit(1)
    if "admin" in done:
        _refresh_user_copy(places[0].dir, cluster)
    click.echo(f"{len(done)} certificate(s) renewed; components take them at their next connection")


def _refresh_user_copy(pki_dir: Path, cluster: str | None) -> None:
    """The admin's copy beside the config file (`kubelite up`, `bootstrap control-plane`) follows the renewal."""
    from client import pki
    from client.config import credentials_dir, current_cluster

    for name in {cluster or current_cluster(), "local"}:
        copy, key = credentials_dir(name) / "admin.crt", credentials_dir(name) / "admin.key"
        if copy.exists() and key.exists() and key.read_bytes() == (pki_dir / "admin.key").read_bytes():
            pki.write_public(copy, (pki_dir / "admin.crt").read_bytes())


COMMANDS: list[click.Command] = [certs]
