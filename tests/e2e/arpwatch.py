"""Watch ARP replies for one address on every port of a lab's bridge, asking for it every few tens of ms.

Run inside the lab's own network namespace (nsenter); prints one JSON line per reply
(time, the bridge port it came in on, the sender's MAC) and exits after --seconds.
"""

from __future__ import annotations

import argparse
import json
import select
import socket
import sys
import time

from speaker import arp

ETH_P_ALL = 0x0003
PROBE_MAC = bytes.fromhex("026b6c000005")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ip", required=True)
    ap.add_argument("--bridge", required=True)
    ap.add_argument("--probe-ip", required=True, help="an unused lab address the probes come from")
    ap.add_argument("--seconds", type=float, required=True)
    ap.add_argument("--interval", type=float, default=0.05)
    args = ap.parse_args()
    # Every protocol: frames a bridge port hands to the bridge reach only the taps for all protocols.
    listen = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    send = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(arp.ETH_P_ARP))
    send.bind((args.bridge, arp.ETH_P_ARP))
    probe = arp.build(arp.REQUEST, src_mac=PROBE_MAC, src_ip=args.probe_ip, dst_mac=b"\0" * 6, dst_ip=args.ip,
                      eth_dst=arp.BROADCAST)
    end = time.monotonic() + args.seconds
    next_probe = 0.0
    print(json.dumps({"started": time.time()}), flush=True)
    while (now := time.monotonic()) < end:
        if now >= next_probe:
            send.send(probe)
            next_probe = now + args.interval
        ready, _, _ = select.select([listen], [], [], max(0.0, min(next_probe, end) - now))
        if not ready:
            continue
        frame, addr = listen.recvfrom(2048)
        if addr[2] == arp.PACKET_OUTGOING or addr[0] == args.bridge:
            continue
        got = arp.parse(frame)
        if got is not None and got.op == arp.REPLY and got.sender_ip == args.ip:
            print(json.dumps({"t": time.time(), "port": addr[0], "mac": arp.mac_text(got.sender_mac)}), flush=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
