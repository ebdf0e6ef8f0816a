"""ARP for announced addresses: frames parsed and built (pure), and a responder on an AF_PACKET socket.

The addresses are never configured on an interface, so the kernel never answers for
them: only a running speaker that announces an address answers, and a speaker that
stops (or dies) stops answering at once.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from dataclasses import dataclass

import structlog

log = structlog.get_logger()

ETH_P_ARP = 0x0806
ETH_P_IP = 0x0800
REQUEST = 1
REPLY = 2
BROADCAST = b"\xff" * 6
PACKET_OUTGOING = 4  # sll_pkttype of frames this host sent
_HEADER = struct.Struct("!6s6sH")
_ARP = struct.Struct("!HHBBH6s4s6s4s")


@dataclass(frozen=True)
class Arp:
    op: int
    sender_mac: bytes
    sender_ip: str
    target_mac: bytes
    target_ip: str


def parse(frame: bytes) -> Arp | None:
    """An Ethernet/IPv4 ARP frame's fields, or None for anything else."""
    if len(frame) < _HEADER.size + _ARP.size:
        return None
    _, _, ethertype = _HEADER.unpack_from(frame)
    if ethertype != ETH_P_ARP:
        return None
    htype, ptype, hlen, plen, op, sha, spa, tha, tpa = _ARP.unpack_from(frame, _HEADER.size)
    if htype != 1 or ptype != ETH_P_IP or hlen != 6 or plen != 4:
        return None
    return Arp(op, sha, socket.inet_ntoa(spa), tha, socket.inet_ntoa(tpa))


def build(op: int, *, src_mac: bytes, src_ip: str, dst_mac: bytes, dst_ip: str, eth_dst: bytes) -> bytes:
    return _HEADER.pack(eth_dst, src_mac, ETH_P_ARP) + _ARP.pack(
        1, ETH_P_IP, 6, 4, op, src_mac, socket.inet_aton(src_ip), dst_mac, socket.inet_aton(dst_ip))


def answer(req: Arp, mac: bytes, announced: set[str] | frozenset[str]) -> bytes | None:
    """The reply to an ARP request for an announced address (None when it is not ours to answer)."""
    if req.op != REQUEST or req.target_ip not in announced or req.sender_mac == mac:
        return None
    return build(REPLY, src_mac=mac, src_ip=req.target_ip, dst_mac=req.sender_mac, dst_ip=req.sender_ip,
                 eth_dst=req.sender_mac)


def gratuitous(mac: bytes, ip: str) -> list[bytes]:
    """A gratuitous ARP request and reply for `ip`: neighbours update their caches to `mac`."""
    return [build(op, src_mac=mac, src_ip=ip, dst_mac=BROADCAST if op == REPLY else b"\0" * 6, dst_ip=ip,
                  eth_dst=BROADCAST) for op in (REQUEST, REPLY)]


def mac_text(mac: bytes) -> str:
    return ":".join(f"{b:02x}" for b in mac)


class Responder:
    """Answers ARP requests for `announced` on one interface."""

    def __init__(self, interface: str) -> None:
        self.interface = interface
        self.announced: set[str] = set()
        self._sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP))
        try:
            self._sock.bind((interface, ETH_P_ARP))
            self._sock.setblocking(False)
            self.mac: bytes = self._sock.getsockname()[4]
        except OSError:
            self._sock.close()
            raise
        self.replies = 0

    def set_announced(self, ips: set[str]) -> None:
        """Answer for exactly `ips` from now on; newly announced ones are announced with gratuitous ARP."""
        added = ips - self.announced
        self.announced = set(ips)
        for ip in sorted(added):
            self.send_gratuitous(ip)

    def send_gratuitous(self, ip: str) -> None:
        for frame in gratuitous(self.mac, ip):
            self._send(frame)

    def _send(self, frame: bytes) -> None:
        try:
            self._sock.send(frame)
        except OSError as e:
            log.warning("arp_send_failed", interface=self.interface, error=str(e))

    def _on_readable(self) -> None:
        while True:
            try:
                frame, addr = self._sock.recvfrom(2048)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                log.warning("arp_receive_failed", interface=self.interface, error=str(e))
                return
            if addr[2] == PACKET_OUTGOING:
                continue
            req = parse(frame)
            if req is None:
                continue
            reply = answer(req, self.mac, self.announced)
            if reply is not None:
                self._send(reply)
                self.replies += 1

    async def run(self) -> None:
        """Answer until cancelled; then stop answering for good."""
        loop = asyncio.get_running_loop()
        loop.add_reader(self._sock.fileno(), self._on_readable)
        try:
            await asyncio.Event().wait()
        finally:
            self.announced = set()
            loop.remove_reader(self._sock.fileno())
            self._sock.close()
