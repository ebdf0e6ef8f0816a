"""Running the `nft` command (full syncs, cleanup), optionally inside a named network namespace.

Partial syncs go over netlink (nfnetlink.py); the whole table is written with
`nft -f`, as one transaction, like iptables-restore in iptables mode.
"""

from __future__ import annotations

from proxy.iptables import Iptables
from proxy.nftrules import FAMILY, TABLE


class NftError(Exception):
    """An nft command failed; the message carries its stderr."""


class Nft:
    def __init__(self, netns: str = "", *, timeout: float = 300.0) -> None:
        self._run = Iptables(netns, timeout=timeout)  # the same nsenter-and-deadline runner

    async def apply(self, text: str) -> None:
        """Run `nft -f -` with `text`: all of it or, on error, none."""
        r = await self._run.run(["nft", "-f", "-"], stdin=text)
        if r.code != 0:
            raise NftError(f"nft -f failed (exit {r.code}): {r.stderr.strip()[:2000]}")

    async def delete_table(self) -> bool:
        """Delete the proxy's table; False if there was none."""
        r = await self._run.run(["nft", "delete", "table", FAMILY, TABLE])
        if r.code == 0:
            return True
        if "No such file or directory" in r.stderr:
            return False
        raise NftError(f"nft delete table failed (exit {r.code}): {r.stderr.strip()}")

    async def list_table(self) -> str | None:
        """`nft list table` of the proxy's table (slow on a large table: tests and debugging only)."""
        r = await self._run.run(["nft", "list", "table", FAMILY, TABLE])
        if r.code != 0:
            return None
        return r.stdout
