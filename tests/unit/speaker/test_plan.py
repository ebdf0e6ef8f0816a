"""Who announces a LoadBalancer address, and what each node does about it (speaker/plan.py)."""

from __future__ import annotations

import pytest

from speaker import arp
from speaker.plan import LbService, Step, eligible_nodes, plan_announcer, plan_step

NODES = ("n1", "n2", "n3")


def _svc(endpoints: tuple[str, ...] = NODES, *, local: bool = False, key: str = "default/web") -> LbService:
    return LbService(key, "10.250.0.200", local, frozenset(endpoints))


@pytest.mark.parametrize(("svc", "ready", "want"), [
    pytest.param(_svc(()), NODES, set(), id="no-endpoint-no-node"),
    pytest.param(_svc(("n1",)), NODES, set(NODES), id="cluster-policy-every-ready-node"),
    pytest.param(_svc(("n1",)), ("n2", "n3"), {"n2", "n3"}, id="cluster-policy-endpoint-on-a-down-node"),
    pytest.param(_svc(("n1", "n3"), local=True), NODES, {"n1", "n3"}, id="local-policy-endpoint-nodes"),
    pytest.param(_svc(("n1", "n3"), local=True), ("n2", "n3"), {"n3"}, id="local-policy-ready-endpoint-nodes"),
    pytest.param(_svc(("n1",), local=True), ("n2",), set(), id="local-policy-none-left"),
])
def test_eligible_nodes(svc: LbService, ready: tuple[str, ...], want: set[str]) -> None:
    """Ready nodes are eligible when the Service has a ready endpoint; with Local only those running one."""
    assert eligible_nodes(svc, ready) == want


@pytest.mark.parametrize(("svc", "ready", "holder", "want"), [
    pytest.param(_svc(), NODES, "n2", "n2", id="holder-kept"),
    pytest.param(_svc(), ("n1", "n3"), "n2", "first-ranked", id="holder-down-moves"),
    pytest.param(_svc(("n1",), local=True), NODES, "n2", "n1", id="holder-lost-its-endpoint"),
    pytest.param(_svc(()), NODES, "n2", "", id="no-endpoint-nobody"),
    pytest.param(_svc(), (), "", "", id="no-ready-node-nobody"),
    pytest.param(_svc(), NODES, "", "first-ranked", id="no-holder"),
])
def test_plan_announcer(svc: LbService, ready: tuple[str, ...], holder: str, want: str) -> None:
    """The holder keeps the address while eligible; otherwise the first eligible node by rank takes it."""
    got = plan_announcer(svc, ready, holder)
    if want == "first-ranked":
        assert got in eligible_nodes(svc, ready) and got != holder
        assert got == plan_announcer(svc, tuple(reversed(ready)), holder)  # the order of the list does not matter
    else:
        assert got == want


def test_plan_announcer_spreads_services_over_nodes() -> None:
    """Without holders, different Services land on different nodes (every speaker computes the same)."""
    chosen = {plan_announcer(_svc(key=f"default/s{i}"), NODES, "") for i in range(30)}
    assert chosen == set(NODES)


def test_a_new_node_moves_nothing() -> None:
    """A node joining does not take an address from a holder that is still eligible."""
    assert plan_announcer(_svc(), (*NODES, "n4"), "n3") == "n3"


@pytest.mark.parametrize(("me", "chosen", "holder", "holder_ready", "want"), [
    pytest.param("n1", "n1", "n1", True, Step.ANNOUNCE, id="holder-keeps-announcing"),
    pytest.param("n1", "n1", "", False, Step.TAKE, id="free-lease-taken"),
    pytest.param("n1", "n1", "n2", False, Step.TAKE, id="dead-holder-taken-over"),
    pytest.param("n1", "n1", "n2", True, Step.NONE, id="live-holder-releases-first"),
    pytest.param("n2", "n1", "n2", True, Step.RELEASE, id="ineligible-holder-releases"),
    pytest.param("n2", "", "n2", True, Step.RELEASE, id="nobody-eligible-holder-releases"),
    pytest.param("n3", "n1", "n2", True, Step.NONE, id="bystander"),
    pytest.param("n3", "", "", False, Step.NONE, id="nothing-to-do"),
])
def test_plan_step(me: str, chosen: str, holder: str, holder_ready: bool, want: Step) -> None:
    """Taking over needs a free Lease or a holder whose node is down; a live holder gives up first."""
    assert plan_step(me, chosen, holder, holder_ready=holder_ready) is want


MAC = bytes.fromhex("020000000001")
CLIENT = bytes.fromhex("020000000002")


def _request(target: str, sender_mac: bytes = CLIENT) -> bytes:
    return arp.build(arp.REQUEST, src_mac=sender_mac, src_ip="10.250.0.2", dst_mac=b"\0" * 6, dst_ip=target,
                     eth_dst=arp.BROADCAST)


@pytest.mark.parametrize(("frame", "announced", "answered"), [
    pytest.param(_request("10.250.0.200"), {"10.250.0.200"}, True, id="announced-answered"),
    pytest.param(_request("10.250.0.201"), {"10.250.0.200"}, False, id="other-address-ignored"),
    pytest.param(_request("10.250.0.200"), set(), False, id="nothing-announced"),
    pytest.param(_request("10.250.0.200", MAC), {"10.250.0.200"}, False, id="own-request-ignored"),
    pytest.param(arp.gratuitous(CLIENT, "10.250.0.200")[1], {"10.250.0.200"}, False, id="reply-ignored"),
])
def test_arp_answer(frame: bytes, announced: set[str], answered: bool) -> None:
    """Only requests for an announced address get a reply, from this node's MAC to the asker."""
    req = arp.parse(frame)
    assert req is not None
    reply = arp.answer(req, MAC, announced)
    assert (reply is not None) == answered
    if reply is not None:
        parsed = arp.parse(reply)
        assert parsed == arp.Arp(arp.REPLY, MAC, req.target_ip, CLIENT, "10.250.0.2")
        assert reply[:6] == CLIENT


@pytest.mark.parametrize("frame", [
    pytest.param(b"\0" * 20, id="short"),
    pytest.param(b"\xff" * 12 + b"\x08\x00" + b"\0" * 28, id="ipv4-not-arp"),
])
def test_arp_parse_ignores_other_frames(frame: bytes) -> None:
    """Frames that are not Ethernet/IPv4 ARP parse to None."""
    assert arp.parse(frame) is None


def test_gratuitous_arp_claims_the_address() -> None:
    """Gratuitous ARP is broadcast with the address as both sender and target, from this node's MAC."""
    for frame in arp.gratuitous(MAC, "10.250.0.200"):
        parsed = arp.parse(frame)
        assert parsed is not None and frame[:6] == arp.BROADCAST
        assert (parsed.sender_mac, parsed.sender_ip, parsed.target_ip) == (MAC, "10.250.0.200", "10.250.0.200")
