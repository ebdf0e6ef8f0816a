"""nftables transactions written straight over netlink, for the partial syncs of the nftables mode.

`nft -f` first reads every chain and set of the table from the kernel to check
names (its cache), which at 10,000 Services costs most of a second; an endpoint
change needs none of that. `encode` turns a transaction of nftrules.Op into one
netlink batch, each statement into the same kernel expressions `nft` would
send (so `nft list` prints it back as rendered), and `NftSocket` sends a batch
from inside the node's network namespace and reads the kernel's answers.

Anything it cannot encode raises UnsupportedError, and the caller writes that
transaction with `nft -f` instead.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import struct
import threading
from collections.abc import Iterable

from proxy import netns
from proxy.nftrules import (
    FAMILY,
    MASQ_MARK,
    TABLE,
    Dnat,
    Dport,
    Element,
    FibLocal,
    InSet,
    IpMatch,
    L4Proto,
    MarkMasquerade,
    NumgenIs,
    Op,
    Rule,
    Update,
    Verdict,
)

NETLINK_NETFILTER = 12
NFNL_SUBSYS_NFTABLES = 10
NFNL_MSG_BATCH_BEGIN, NFNL_MSG_BATCH_END = 0x10, 0x11
NLM_F_REQUEST, NLM_F_ACK, NLM_F_DUMP, NLM_F_CREATE, NLM_F_APPEND = 0x1, 0x4, 0x300, 0x400, 0x800
NLMSG_ERROR, NLMSG_DONE = 2, 3
SO_SNDBUFFORCE, SO_RCVBUFFORCE = 32, 33
BUFFER = 64 << 20
ELEMENTS_PER_MESSAGE = 256  # a full sync of 10,000 Services is one batch of ~20 MB
NFPROTO_IPV4 = 2

MSG_NEWCHAIN, MSG_GETCHAIN, MSG_DELCHAIN, MSG_NEWRULE, MSG_GETRULE, MSG_DELRULE = 3, 4, 5, 6, 7, 8
MSG_GETSET = 10
MSG_NEWSET, MSG_DELSET, MSG_NEWSETELEM, MSG_DELSETELEM = 9, 11, 12, 14

# Verdict codes.
NF_DROP, NF_ACCEPT, NFT_JUMP, NFT_GOTO, NFT_RETURN = 0, 1, -3, -4, -5
VERDICTS = {"drop": NF_DROP, "accept": NF_ACCEPT, "jump": NFT_JUMP, "goto": NFT_GOTO, "return": NFT_RETURN}
# Registers, as nft uses them: the verdict register and the 128-bit ones.
REG_VERDICT, REG_1, REG_2 = 0, 1, 2
PROTOCOLS = {"tcp": 6, "udp": 17, "sctp": 132}
# nft's data type of an affinity set's key (what `nft list` prints it as) and its flags.
TYPE_IPADDR = 7
SET_TIMEOUT, SET_EVAL = 0x10, 0x20
# Set user data: the key's byte order, as nft records it (2: big-endian).
_BIG_ORDER = bytes([0, 4]) + struct.pack("=I", 2)


class UnsupportedError(Exception):
    """A statement this encoder does not write (the transaction goes through `nft -f`)."""


class NetlinkError(Exception):
    """The kernel refused a batch; nothing of it was applied."""


# ---------------------------------------------------------------- attributes


def _attr(kind: int, payload: bytes) -> bytes:
    length = 4 + len(payload)
    return struct.pack("=HH", length, kind) + payload + b"\0" * (-length % 4)


def _nest(kind: int, *parts: bytes) -> bytes:
    return _attr(kind | 0x8000, b"".join(parts))


def _str(kind: int, value: str) -> bytes:
    return _attr(kind, value.encode() + b"\0")


def _u32(kind: int, value: int) -> bytes:
    return _attr(kind, struct.pack(">I", value & 0xFFFFFFFF))


def _u64(kind: int, value: int) -> bytes:
    return _attr(kind, struct.pack(">Q", value))


def _value(kind: int, data: bytes) -> bytes:
    """An nft_data attribute holding a value."""
    return _nest(kind, _attr(1, data))


def _verdict_data(kind: int, verdict: Verdict) -> bytes:
    code = VERDICTS[verdict.kind]
    inner = [_u32(1, code)]
    if verdict.chain:
        inner.append(_str(2, verdict.chain))
    return _nest(kind, _nest(2, *inner))


def _expr(name: str, *attrs: bytes) -> bytes:
    return _nest(1, _str(1, name), _nest(2, *attrs))


# ---------------------------------------------------------------- expressions


def _payload(base: int, offset: int, length: int, dreg: int = REG_1) -> bytes:
    return _expr("payload", _u32(1, dreg), _u32(2, base), _u32(3, offset), _u32(4, length))


def _cmp(data: bytes, *, negate: bool = False, sreg: int = REG_1) -> bytes:
    return _expr("cmp", _u32(1, sreg), _u32(2, 1 if negate else 0), _value(3, data))


def _bitwise(mask: bytes, xor: bytes) -> bytes:
    return _expr("bitwise", _u32(1, REG_1), _u32(2, REG_1), _u32(3, len(mask)), _value(4, mask), _value(5, xor))


def _meta_l4proto(dreg: int = REG_1) -> bytes:
    return _expr("meta", _u32(1, dreg), _u32(2, 16))


def _immediate_data(dreg: int, data: bytes) -> bytes:
    return _expr("immediate", _u32(1, dreg), _value(2, data))


def _immediate_verdict(verdict: Verdict) -> bytes:
    return _expr("immediate", _u32(1, REG_VERDICT), _verdict_data(2, verdict))


META_MARK = 3


def _numgen(modulus: int) -> bytes:
    return _expr("numgen", _u32(1, REG_1), _u32(2, modulus), _u32(3, 1), _u32(4, 0))


def _lookup(set_name: str, set_id: int | None) -> bytes:
    attrs = [_u32(2, REG_1), _str(1, set_name)]
    if set_id is not None:
        attrs.append(_u32(4, set_id))
    return _expr("lookup", *attrs)


def _dnat(addr_reg: int, proto_reg: int, flags: int) -> bytes:
    return _expr("nat", _u32(1, 1), _u32(2, NFPROTO_IPV4), _u32(3, addr_reg), _u32(5, proto_reg), _u32(7, flags))


def _ip(value: str) -> bytes:
    return socket.inet_aton(value)


def _port(port: int) -> bytes:
    return struct.pack(">H", port)


# ---------------------------------------------------------------- statements


class Batch:
    """The messages of one transaction."""

    def __init__(self) -> None:
        self.messages: list[tuple[int, int, bytes]] = []  # (message type, extra flags, attributes)

    def add(self, kind: int, flags: int, body: bytes) -> None:
        self.messages.append((kind, flags, body))


def _element(key: bytes, data: bytes = b"") -> bytes:
    return _nest(1, _value(1, key), data)


def _ip_match(m: IpMatch) -> list[bytes]:
    offset = 12 if m.field == "saddr" else 16
    net = ipaddress.IPv4Network(m.value, strict=False)
    if net.prefixlen % 8:  # as nft does: the whole address, masked
        return [_payload(1, offset, 4), _bitwise(net.netmask.packed, bytes(4)),
                _cmp(net.network_address.packed, negate=m.negate)]
    size = net.prefixlen // 8
    return [_payload(1, offset, size), _cmp(net.network_address.packed[:size], negate=m.negate)]


def _stmt(s: object) -> list[bytes]:
    if isinstance(s, IpMatch):
        return _ip_match(s)
    if isinstance(s, NumgenIs):
        return [_numgen(s.modulus), _cmp(struct.pack("=I", 0))]
    if isinstance(s, MarkMasquerade):
        # meta mark set meta mark | MARK: load, (mark & ~MARK) ^ MARK, store
        return [_expr("meta", _u32(1, REG_1), _u32(2, META_MARK)),
                _bitwise(struct.pack("=I", 0xFFFFFFFF & ~MASQ_MARK), struct.pack("=I", MASQ_MARK)),
                _expr("meta", _u32(2, META_MARK), _u32(3, REG_1))]
    if isinstance(s, InSet):
        return [_payload(1, 12, 4), _lookup(s.set_name, None)]
    if isinstance(s, L4Proto):
        return [_meta_l4proto(), _cmp(bytes([PROTOCOLS[s.proto]]))]
    if isinstance(s, Dport):
        return [_meta_l4proto(), _cmp(bytes([PROTOCOLS[s.proto]])), _payload(2, 2, 2), _cmp(_port(s.port))]
    if isinstance(s, FibLocal):
        # fib saddr type == local (RTN_LOCAL, a host-order u32)
        return [_expr("fib", _u32(1, REG_1), _u32(2, 3), _u32(3, 1)), _cmp(struct.pack("=I", 2))]
    if isinstance(s, Verdict):
        return [_immediate_verdict(s)]
    if isinstance(s, Dnat):
        ip, _, port = s.target.rpartition(":")
        return [_immediate_data(REG_1, _ip(ip)), _immediate_data(REG_2, _port(int(port))), _dnat(REG_1, REG_2, 0x2)]
    if isinstance(s, Update):
        return [_payload(1, 12, 4), _expr("dynset", _u32(4, REG_1), _u32(3, 1), _str(1, s.set_name))]
    raise UnsupportedError(f"statement {s!r}")


def _rule(batch: Batch, chain: str, rule: Rule) -> None:
    exprs: list[bytes] = []
    for s in rule:
        exprs.extend(_stmt(s))
    batch.add(MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND, _str(1, TABLE) + _str(2, chain) + _nest(4, *exprs))


def _key(e: Element) -> bytes:
    out = b""
    for part in e.key:
        if isinstance(part, int):
            out += _port(part) + b"\0\0"
        elif part in PROTOCOLS:
            out += bytes([PROTOCOLS[part]]) + b"\0\0\0"
        else:
            out += _ip(part)
    return out


def _parse(body: bytes) -> Iterable[tuple[int, bytes]]:
    """Top-level attributes (type, payload) of a message body."""
    offset = 0
    while offset + 4 <= len(body):
        length, kind = struct.unpack_from("=HH", body, offset)
        if length < 4:
            return
        yield kind & 0x3FFF, body[offset + 4:offset + length]
        offset += (length + 3) & ~3


def encode(ops: Iterable[Op]) -> Batch:
    """The netlink messages of a transaction (UnsupportedError if one cannot be written this way)."""
    batch = Batch()
    set_id = 0
    for op in ops:
        table = _str(1, TABLE)
        if op.what == "chain":
            kind = {"add": MSG_NEWCHAIN, "delete": MSG_DELCHAIN, "flush": MSG_DELRULE}[op.verb]
            attr = 3 if op.verb != "flush" else 2  # a chain's name, or a rule's chain (flush: delete its rules)
            batch.add(kind, NLM_F_CREATE if op.verb == "add" else 0, table + _str(attr, op.name))
        elif op.what == "rule":
            _rule(batch, op.name, op.rule)
        elif op.what == "element":
            elements = [_element(_key(e), _verdict_data(2, e.verdict) if op.verb == "add" else b"")
                        for e in op.elements]
            kind = MSG_NEWSETELEM if op.verb == "add" else MSG_DELSETELEM
            # An attribute holds at most 64 KiB: a few hundred elements per message.
            for i in range(0, len(elements), ELEMENTS_PER_MESSAGE):
                chunk = elements[i:i + ELEMENTS_PER_MESSAGE]
                batch.add(kind, NLM_F_CREATE if op.verb == "add" else 0, table + _str(2, op.name) + _nest(3, *chunk))
        elif op.what == "map" and op.verb == "flush":
            batch.add(MSG_DELSETELEM, 0, table + _str(2, op.name))  # no element list: every element
        elif op.what == "set":
            if op.verb == "add":
                set_id += 1  # the kernel wants an id for every new set, named or not
                batch.add(MSG_NEWSET, NLM_F_CREATE, table + _str(2, op.name) + _u32(3, SET_TIMEOUT | SET_EVAL)
                          + _u32(4, TYPE_IPADDR) + _u32(5, 4) + _u32(10, set_id) + _u64(11, op.timeout * 1000)
                          + _attr(13, _BIG_ORDER))
            else:
                batch.add(MSG_DELSET, 0, table + _str(2, op.name))
        else:
            raise UnsupportedError(f"{op.verb} {op.what}")
    return batch


def serialize(batch: Batch, *, seq: int = 1) -> tuple[bytes, int]:
    """The batch as bytes, between BEGIN and END; returns them and the number of messages in it."""
    family = {"ip": socket.AF_INET}[FAMILY]
    out = [struct.pack("=IHHII", 20, NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, seq, 0)
           + struct.pack("=BBH", 0, 0, socket.htons(NFNL_SUBSYS_NFTABLES))]
    last = len(batch.messages)
    for i, (kind, flags, body) in enumerate(batch.messages, start=1):
        payload = struct.pack("=BBH", family, 0, 0) + body
        # Only the last message asks for an answer: errors are reported anyway, and 100,000 acks would not fit
        # a socket buffer; its answer (an ack or an error) says the kernel is done with the batch.
        ack = NLM_F_ACK if i == last else 0
        out.append(struct.pack("=IHHII", 16 + len(payload), (NFNL_SUBSYS_NFTABLES << 8) | kind,
                               NLM_F_REQUEST | ack | flags, seq + i, 0) + payload)
    end = seq + len(batch.messages) + 1
    out.append(struct.pack("=IHHII", 20, NFNL_MSG_BATCH_END, NLM_F_REQUEST, end, 0)
               + struct.pack("=BBH", 0, 0, socket.htons(NFNL_SUBSYS_NFTABLES)))
    return b"".join(out), len(batch.messages)


# ---------------------------------------------------------------- the socket


def _open(namespace: str) -> socket.socket:
    def make() -> socket.socket:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        sock.bind((0, 0))
        for force, plain in ((SO_SNDBUFFORCE, socket.SO_SNDBUF), (SO_RCVBUFFORCE, socket.SO_RCVBUF)):
            try:
                sock.setsockopt(socket.SOL_SOCKET, force, BUFFER)  # root: past net.core.*mem_max
            except OSError:
                sock.setsockopt(socket.SOL_SOCKET, plain, BUFFER)
        return sock

    return netns.in_namespace(namespace, make)


class NftSocket:
    """A netfilter netlink socket in the node's namespace; `apply` sends one batch and waits for every answer."""

    def __init__(self, namespace: str = "") -> None:
        self.namespace = namespace
        self._sock: socket.socket | None = None
        self._seq = 0
        self._lock = threading.Lock()

    def _socket(self) -> socket.socket:
        if self._sock is None:
            self._sock = _open(self.namespace)
        return self._sock

    def apply(self, batch: Batch, *, timeout: float = 300.0) -> None:
        """Send the batch (blocking; call it from a worker thread); NetlinkError if the kernel refused it."""
        if not batch.messages:
            return
        with self._lock:
            sock = self._socket()
            data, count = serialize(batch, seq=self._seq + 1)
            first, last = self._seq + 2, self._seq + 1 + count
            self._seq = last + 1
            sock.settimeout(timeout)
            try:
                sock.sendall(data)
                error = None
                for seq, code in self._replies(sock, last):
                    if code and error is None:
                        index = seq - first
                        kind = batch.messages[index][0] if 0 <= index < count else "?"
                        error = NetlinkError(f"message {index} (type {kind}) of {count}: {os.strerror(-code)} "
                                             f"({errno.errorcode.get(-code, code)})")
                if error is not None:
                    raise error
            except (OSError, NetlinkError):
                self.close()  # a half-read socket would answer the next request with this one's messages
                raise

    def _replies(self, sock: socket.socket, last: int) -> Iterable[tuple[int, int]]:
        """(seq, error code) of each answer, until the one to message `last` (or an error past it)."""
        while True:
            buf = sock.recv(1 << 20)
            offset = 0
            done = False
            while offset + 16 <= len(buf):
                length, kind, _flags, seq, _pid = struct.unpack_from("=IHHII", buf, offset)
                if kind == NLMSG_ERROR:
                    code = struct.unpack_from("=i", buf, offset + 16)[0]
                    yield seq, code
                    done = done or seq >= last
                offset += (length + 3) & ~3
            if done:
                return

    def dump(self, kind: int, attrs: bytes, *, timeout: float = 60.0) -> list[bytes] | None:
        """The attributes of each object a GET dump returns; None if the table does not exist."""
        with self._lock:
            sock = self._socket()
            self._seq += 1
            seq = self._seq
            payload = struct.pack("=BBH", socket.AF_INET, 0, 0) + attrs
            sock.settimeout(timeout)
            try:
                sock.sendall(struct.pack("=IHHII", 16 + len(payload), (NFNL_SUBSYS_NFTABLES << 8) | kind,
                                         NLM_F_REQUEST | NLM_F_DUMP, seq, 0) + payload)
                out: list[bytes] = []
                while True:
                    buf = sock.recv(1 << 20)
                    offset = 0
                    while offset + 16 <= len(buf):
                        length, mtype, _flags, mseq, _pid = struct.unpack_from("=IHHII", buf, offset)
                        start, offset = offset, offset + ((length + 3) & ~3)
                        if mseq != seq:
                            continue
                        if mtype == NLMSG_DONE:
                            return out
                        if mtype == NLMSG_ERROR:
                            code = struct.unpack_from("=i", buf, start + 16)[0]
                            if code == -errno.ENOENT:
                                return None
                            raise NetlinkError(f"dump failed: {os.strerror(-code)}")
                        out.append(buf[start + 20:start + length])  # after nlmsghdr and nfgenmsg
            except OSError:
                self.close()
                raise

    def names(self, kind: int, name_attr: int) -> list[str] | None:
        """Names of the table's chains (MSG_GETCHAIN, 3) or sets (MSG_GETSET, 2); None without the table."""
        found = self.dump(kind, _str(1, TABLE))
        if found is None:
            return None
        names = []
        for body in found:
            attrs = {k: v.decode(errors="replace").rstrip("\0") for k, v in _parse(body) if k in (1, name_attr)}
            if attrs.get(1) == TABLE:  # a dump covers every table of the family (iptables-nft's too)
                names.append(attrs[name_attr])
        return names

    def rule_count(self, chain: str) -> int | None:
        """How many rules `chain` holds; None if it (or the table) does not exist."""
        found = self.dump(MSG_GETRULE, _str(1, TABLE) + _str(2, chain))
        return None if found is None else len(found)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None



