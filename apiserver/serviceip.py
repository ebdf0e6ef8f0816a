"""Service externalIPs: refused unless they fall in the CIDRs the apiserver allows (Kubernetes' DenyServiceExternalIPs).

Every node intercepts traffic to a Service's external IPs, so whoever may create a Service could otherwise
capture any address, e.g. a public resolver's (CVE-2020-8554). With no `--service-external-ip-cidrs` no
Service may have one; with the flag, each address must fall in one of the listed CIDRs. A Service that
already has an address keeps it across updates (as Kubernetes: only new addresses are checked).
"""

from __future__ import annotations

import ipaddress
from typing import Any, ClassVar

from api.errors import FieldError, InvalidError

FLAG = "--service-external-ip-cidrs"
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_cidrs(text: str) -> tuple[Network, ...]:
    """The flag's comma-separated CIDRs; ValueError names a bad entry."""
    out = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        try:
            out.append(ipaddress.ip_network(part, strict=True))
        except ValueError as e:
            raise ValueError(f"{FLAG} entry {part!r}: {e}") from None
    return tuple(out)


def external_ip_errors(new: list[str], old: list[str], allowed: tuple[Network, ...]) -> list[FieldError]:
    """The addresses of `new` (not already in `old`) that the allowed CIDRs do not cover."""
    errs = []
    for i, ip in enumerate(new):
        if ip in old:
            continue
        path = f"spec.externalIPs[{i}]"
        if not allowed:
            errs.append(FieldError(path, "Forbidden", f"externalIPs are not allowed: the apiserver allows none "
                                                      f"(it takes a list of CIDRs with {FLAG})", ip))
            continue
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            continue  # validation names it
        if not any(addr.version == n.version and addr in n for n in allowed):
            shown = ", ".join(str(n) for n in allowed)
            errs.append(FieldError(path, "Forbidden", f"not in the external IP CIDRs the apiserver allows "
                                                      f"({shown})", ip))
    return errs


class ExternalIPs:
    """A Service's new externalIPs must fall in the allowed CIDRs; by default none are allowed."""

    name = "ExternalIPs"
    kinds: ClassVar[frozenset[str] | None] = frozenset({"Service"})
    operations = frozenset({"CREATE", "UPDATE"})

    def __init__(self, cidrs: str) -> None:
        self.allowed = parse_cidrs(cidrs)

    async def admit(self, a: Any) -> None:
        pass

    async def validate(self, a: Any) -> None:
        old = list(a.old.spec.external_ips) if a.old is not None else []
        errs = external_ip_errors(list(a.obj.spec.external_ips), old, self.allowed)
        if errs:
            raise InvalidError(errs, prefix=f'Service "{a.obj.metadata.name}" is invalid: ')
