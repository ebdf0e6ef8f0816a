"""The control planes' etcd cluster as an operator sees it: its members, their health, the leader; adding one.

What `etcdctl member list`, `endpoint status --cluster` and `member add` do, over etcd's own gRPC API
(Cluster and Maintenance services) with the apiserver's etcd client certificate: `kubelite status`
shows the members, and `kubelite bootstrap control-plane --join` adds the joining machine's member
before its etcd starts with `--initial-cluster-state existing`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlparse

import grpc
from aetcd import rpc

from client import tls
from client.config import ClientConfig, ConfigError

CALL_TIMEOUT = 2.0


class EtcdAdminError(Exception):
    """No member answered, or etcd refused the change; the message says which and why."""


@dataclass(frozen=True)
class EtcdFiles:
    """The CA etcd's certificates are signed by, and a client certificate etcd accepts."""

    ca_file: str
    cert_file: str
    key_file: str


@dataclass(frozen=True)
class MemberStatus:
    """One member as the cluster lists it, and what it says of itself when asked (nothing if it did not answer)."""

    name: str
    member_id: int
    peer_urls: tuple[str, ...]
    client_urls: tuple[str, ...]
    healthy: bool
    leader: bool
    raft_term: int = 0
    db_size: int = 0
    error: str = ""


def _target(url: str) -> str:
    parsed = urlparse(url)
    return f"{parsed.hostname}:{parsed.port or 2379}"


def _channel(url: str, files: EtcdFiles) -> grpc.aio.Channel:
    try:
        creds = tls.ClientCredentials(ClientConfig(server=_target(url), ca_file=files.ca_file,
                                                   cert_file=files.cert_file, key_file=files.key_file, cluster="etcd"))
    except ConfigError as e:
        raise EtcdAdminError(f"etcd client certificate: {e}") from None
    return grpc.aio.secure_channel(_target(url), creds.channel_credentials())


async def _first_answer(endpoints: Sequence[str], files: EtcdFiles, call):  # type: ignore[no-untyped-def]
    """`call(channel)` on the first endpoint that answers; EtcdAdminError naming each failure if none does."""
    errors = []
    for url in endpoints:
        async with _channel(url, files) as channel:
            try:
                return await call(channel)
            except grpc.aio.AioRpcError as e:
                errors.append(f"{_target(url)}: {e.details() or e.code().name}")
    raise EtcdAdminError("no etcd member answered: " + "; ".join(errors))


def reported_leader(answers: Sequence[tuple[int, int]]) -> int:
    """The leader's member ID from the members' (raft term, leader ID) answers: the one reported at the highest
    term, so the leader is known even when it did not answer itself, and a member still naming a deposed leader
    is outvoted by one that saw the election; 0 if nobody names one."""
    named = [a for a in answers if a[1]]
    return max(named)[1] if named else 0


async def member_statuses(endpoints: Sequence[str], files: EtcdFiles, *,
                          timeout: float = CALL_TIMEOUT) -> list[MemberStatus]:
    """Every member of the cluster (listed by the first endpoint that answers), each asked for its own status and
    for the leader; `timeout` is each call's (slow machines need longer)."""
    async def members(channel: grpc.aio.Channel) -> rpc.MemberListResponse:
        return await rpc.ClusterStub(channel).MemberList(rpc.MemberListRequest(), timeout=timeout)

    listed = await _first_answer(endpoints, files, members)

    async def one(member: rpc.Member) -> tuple[dict, rpc.StatusResponse | None]:
        base = dict(name=member.name or "(not started)", member_id=member.ID, peer_urls=tuple(member.peerURLs),
                    client_urls=tuple(member.clientURLs))
        if not member.clientURLs:
            return {**base, "healthy": False, "error": "not started yet"}, None
        async with _channel(member.clientURLs[0], files) as channel:
            try:
                st = await rpc.MaintenanceStub(channel).Status(rpc.StatusRequest(), timeout=timeout)
            except grpc.aio.AioRpcError as e:
                return {**base, "healthy": False, "error": e.details() or e.code().name}, None
        return {**base, "healthy": not st.errors, "raft_term": st.raftTerm, "db_size": st.dbSize,
                "error": "; ".join(st.errors)}, st

    answered = await asyncio.gather(*(one(m) for m in listed.members))
    leader = reported_leader([(st.raftTerm, st.leader) for _, st in answered if st is not None])
    return [MemberStatus(**fields, leader=leader != 0 and fields["member_id"] == leader) for fields, _ in answered]


async def add_member(endpoints: Sequence[str], files: EtcdFiles, *, name: str,
                     peer_url: str) -> tuple[tuple[str, str], ...]:
    """Add a member that will listen for peers at `peer_url` (`etcdctl member add`); returns every member as
    (name, peer URL), the new one named `name`, for its --initial-cluster. A member already listed with that peer
    URL (a join tried again) is not added twice."""
    async def add(channel: grpc.aio.Channel) -> tuple[tuple[str, str], ...]:
        cluster = rpc.ClusterStub(channel)
        listed = await cluster.MemberList(rpc.MemberListRequest(), timeout=CALL_TIMEOUT)
        if not any(peer_url in m.peerURLs for m in listed.members):
            listed = await cluster.MemberAdd(rpc.MemberAddRequest(peerURLs=[peer_url]), timeout=CALL_TIMEOUT * 5)
        return tuple((name if peer_url in m.peerURLs else m.name, m.peerURLs[0]) for m in listed.members)

    try:
        return await _first_answer(endpoints, files, add)
    except EtcdAdminError as e:
        raise EtcdAdminError(f"cannot add etcd member {name} at {peer_url}: {e}") from None


def render_initial_cluster_urls(members: Sequence[tuple[str, str]]) -> str:
    """--initial-cluster from (name, peer URL) pairs: `cp=https://10.250.0.2:2380,...`."""
    return ",".join(f"{name}={url}" for name, url in members)
