"""Forget UDP conntrack entries that still point at removed endpoints.

A UDP "connection" lives in conntrack as long as packets keep coming, so a
client that keeps sending from the same port would keep reaching an endpoint
that is gone. kube-proxy deletes those entries after each sync; so do we.
TCP needs nothing: a new connection is a new conntrack entry and takes the new rules.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import structlog

from proxy.iptables import Iptables
from proxy.rules import EMPTY, ServiceRules

log = structlog.get_logger()


def plan(old: Mapping[str, ServiceRules], new: Mapping[str, ServiceRules], keys: Iterable[str]) -> list[list[str]]:
    """`conntrack -D` commands for endpoints that left a UDP destination of the Services in `keys`."""
    out: list[list[str]] = []
    for key in sorted(keys):
        before, after = old.get(key, EMPTY).udp, new.get(key, EMPTY).udp
        for dest, ips in sorted(before.items()):
            gone = sorted(set(ips) - set(after.get(dest, ())))
            ip, _, port = dest.rpartition(":")
            where = ["--orig-dst", ip] if ip else []
            for ep in gone:
                out.append(["conntrack", "-D", "-p", "udp", *where, "--orig-port-dst", port, "--dst-nat", ep])
    return out


async def apply(iptables: Iptables, commands: list[list[str]]) -> None:
    """Run the commands; failures are logged, never raised (the rules are already right)."""
    for argv in commands:
        try:
            r = await iptables.run(argv, timeout=10.0)
        except (OSError, TimeoutError) as e:
            log.warning("conntrack_cleanup_failed", command=" ".join(argv), error=str(e))
            continue
        # conntrack exits 1 when no entry matched: nothing to forget.
        if r.code not in (0, 1):
            log.warning("conntrack_cleanup_failed", command=" ".join(argv), error=r.stderr.strip())
