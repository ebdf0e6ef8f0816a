"""Golden text of render_rules: the exact iptables-restore payload for each kind of Service."""
# ruff: noqa: E501  (golden lines are as long as iptables-save prints them)

from __future__ import annotations

import pytest

from proxy.rules import Node, render_rules
from unit.proxy.objects import slice_of, subset, svc

N1 = Node("n1")

FILTER_HEAD = """\
*filter
:KUBE-SERVICES - [0:0]
:KUBE-EXTERNAL-SERVICES - [0:0]
:KUBE-FORWARD - [0:0]
-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x4000/0x4000 -j ACCEPT
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
"""
NAT_HEAD = """\
*nat
:KUBE-SERVICES - [0:0]
:KUBE-NODEPORTS - [0:0]
:KUBE-POSTROUTING - [0:0]
:KUBE-MARK-MASQ - [0:0]
"""
NAT_FIXED = """\
-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN
-A KUBE-POSTROUTING -j MARK --set-xmark 0x4000/0x0
-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully
-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000
"""
NODEPORTS_JUMP = ('-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last '
                  'rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS\n')


def golden(*, filter_rules: str = "", chains: str, services: str, nodeports: str = "", rules: str) -> str:
    """The whole payload: the fixed chains and rules around one test's own lines."""
    return (FILTER_HEAD + filter_rules + "COMMIT\n" + NAT_HEAD + chains + NAT_FIXED + services + NODEPORTS_JUMP
            + nodeports + rules + "COMMIT\n")


def test_empty_cluster_has_only_the_fixed_chains() -> None:
    """With no Services the payload is the fixed chains, their rules and the jump to KUBE-NODEPORTS."""
    assert render_rules([], [], N1) == golden(chains="", services="", rules="")


def test_cluster_ip_with_two_ready_endpoints() -> None:
    """A ClusterIP port jumps to its KUBE-SVC chain, which picks each ready endpoint's KUBE-SEP at random."""
    out = render_rules(
        [svc("web", cluster_ip="10.96.0.5", ports=[{"name": "http", "port": 80, "target_port": "8080"}])],
        [slice_of("web", subset(["10.244.2.7", "10.244.1.5"], ["10.244.3.9"], [("http", 8080, "TCP")]))],
        N1,
    )
    assert out == """\
*filter
:KUBE-SERVICES - [0:0]
:KUBE-EXTERNAL-SERVICES - [0:0]
:KUBE-FORWARD - [0:0]
-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x4000/0x4000 -j ACCEPT
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
COMMIT
*nat
:KUBE-SERVICES - [0:0]
:KUBE-NODEPORTS - [0:0]
:KUBE-POSTROUTING - [0:0]
:KUBE-MARK-MASQ - [0:0]
:KUBE-SVC-CDGGSHYLG3RE2FKL - [0:0]
:KUBE-SEP-AFGSLHOD2HFNCBX4 - [0:0]
:KUBE-SEP-2RIJ5GIYXEFH6G4D - [0:0]
-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN
-A KUBE-POSTROUTING -j MARK --set-xmark 0x4000/0x0
-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully
-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000
-A KUBE-SERVICES -d 10.96.0.5/32 -p tcp -m comment --comment "default/web:http cluster IP" -m tcp --dport 80 -j KUBE-SVC-CDGGSHYLG3RE2FKL
-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS
-A KUBE-SVC-CDGGSHYLG3RE2FKL -m comment --comment "default/web:http -> 10.244.1.5:8080" -m statistic --mode random --probability 0.50000000000 -j KUBE-SEP-AFGSLHOD2HFNCBX4
-A KUBE-SVC-CDGGSHYLG3RE2FKL -m comment --comment "default/web:http -> 10.244.2.7:8080" -j KUBE-SEP-2RIJ5GIYXEFH6G4D
-A KUBE-SEP-AFGSLHOD2HFNCBX4 -s 10.244.1.5/32 -m comment --comment "default/web:http" -j MARK --set-xmark 0x4000/0x4000
-A KUBE-SEP-AFGSLHOD2HFNCBX4 -p tcp -m comment --comment "default/web:http" -m tcp -j DNAT --to-destination 10.244.1.5:8080
-A KUBE-SEP-2RIJ5GIYXEFH6G4D -s 10.244.2.7/32 -m comment --comment "default/web:http" -j MARK --set-xmark 0x4000/0x4000
-A KUBE-SEP-2RIJ5GIYXEFH6G4D -p tcp -m comment --comment "default/web:http" -m tcp -j DNAT --to-destination 10.244.2.7:8080
COMMIT
"""


def test_node_port() -> None:
    """A NodePort is reached from KUBE-NODEPORTS through KUBE-EXT, which marks the packet for masquerade."""
    out = render_rules(
        [svc("web-np", cluster_ip="10.96.0.6", type="NodePort", ports=[{"name": "http", "port": 80, "node_port": 30080}])],
        [slice_of("web-np", subset(["10.244.1.5"], ports=[("http", 8080, "TCP")]))],
        N1,
    )
    assert out == golden(
        chains="""\
:KUBE-EXT-2262UYG6EQJDKK3I - [0:0]
:KUBE-SVC-2262UYG6EQJDKK3I - [0:0]
:KUBE-SEP-HUYZG3CKEEIWMHS5 - [0:0]
""",
        services="""\
-A KUBE-SERVICES -d 10.96.0.6/32 -p tcp -m comment --comment "default/web-np:http cluster IP" -m tcp --dport 80 -j KUBE-SVC-2262UYG6EQJDKK3I
""",
        nodeports="""\
-A KUBE-NODEPORTS -p tcp -m comment --comment "default/web-np:http" -m tcp --dport 30080 -j KUBE-EXT-2262UYG6EQJDKK3I
""",
        rules="""\
-A KUBE-EXT-2262UYG6EQJDKK3I -m comment --comment "masquerade traffic for default/web-np:http external destinations" -j KUBE-MARK-MASQ
-A KUBE-EXT-2262UYG6EQJDKK3I -j KUBE-SVC-2262UYG6EQJDKK3I
-A KUBE-SVC-2262UYG6EQJDKK3I -m comment --comment "default/web-np:http -> 10.244.1.5:8080" -j KUBE-SEP-HUYZG3CKEEIWMHS5
-A KUBE-SEP-HUYZG3CKEEIWMHS5 -s 10.244.1.5/32 -m comment --comment "default/web-np:http" -j MARK --set-xmark 0x4000/0x4000
-A KUBE-SEP-HUYZG3CKEEIWMHS5 -p tcp -m comment --comment "default/web-np:http" -m tcp -j DNAT --to-destination 10.244.1.5:8080
""",
    )


def test_load_balancer() -> None:
    """A LoadBalancer's ingress IP and its node port both lead to KUBE-EXT."""
    out = render_rules(
        [svc("edge", cluster_ip="10.96.0.7", type="LoadBalancer",
             ports=[{"name": "https", "port": 443, "node_port": 31443}],
             status={"load_balancer": {"ingress": [{"ip": "10.250.0.130"}]}})],
        [slice_of("edge", subset(["10.244.2.8"], ports=[("https", 8443, "TCP")]))],
        N1,
    )
    assert out == golden(
        chains="""\
:KUBE-EXT-QCFLP2V2YBSUHVTW - [0:0]
:KUBE-SVC-QCFLP2V2YBSUHVTW - [0:0]
:KUBE-SEP-3BZEANMXYCUPRXAT - [0:0]
""",
        services="""\
-A KUBE-SERVICES -d 10.96.0.7/32 -p tcp -m comment --comment "default/edge:https cluster IP" -m tcp --dport 443 -j KUBE-SVC-QCFLP2V2YBSUHVTW
-A KUBE-SERVICES -d 10.250.0.130/32 -p tcp -m comment --comment "default/edge:https loadbalancer IP" -m tcp --dport 443 -j KUBE-EXT-QCFLP2V2YBSUHVTW
""",
        nodeports="""\
-A KUBE-NODEPORTS -p tcp -m comment --comment "default/edge:https" -m tcp --dport 31443 -j KUBE-EXT-QCFLP2V2YBSUHVTW
""",
        rules="""\
-A KUBE-EXT-QCFLP2V2YBSUHVTW -m comment --comment "masquerade traffic for default/edge:https external destinations" -j KUBE-MARK-MASQ
-A KUBE-EXT-QCFLP2V2YBSUHVTW -j KUBE-SVC-QCFLP2V2YBSUHVTW
-A KUBE-SVC-QCFLP2V2YBSUHVTW -m comment --comment "default/edge:https -> 10.244.2.8:8443" -j KUBE-SEP-3BZEANMXYCUPRXAT
-A KUBE-SEP-3BZEANMXYCUPRXAT -s 10.244.2.8/32 -m comment --comment "default/edge:https" -j MARK --set-xmark 0x4000/0x4000
-A KUBE-SEP-3BZEANMXYCUPRXAT -p tcp -m comment --comment "default/edge:https" -m tcp -j DNAT --to-destination 10.244.2.8:8443
""",
    )


def test_external_ips_of_an_unnamed_port() -> None:
    """An externalIP gets a KUBE-SERVICES rule into KUBE-EXT; an unnamed port is named `ns/svc`."""
    out = render_rules(
        [svc("legacy", cluster_ip="10.96.0.8", external_ips=["192.0.2.10"], ports=[{"port": 80}])],
        [slice_of("legacy", subset(["10.244.1.6"], ports=[("", 80, "TCP")]))],
        N1,
    )
    assert out == golden(
        chains="""\
:KUBE-EXT-EPTCW4GXRLCJJ2N3 - [0:0]
:KUBE-SVC-EPTCW4GXRLCJJ2N3 - [0:0]
:KUBE-SEP-PDJKSXXFL2OR4X67 - [0:0]
""",
        services="""\
-A KUBE-SERVICES -d 10.96.0.8/32 -p tcp -m comment --comment "default/legacy cluster IP" -m tcp --dport 80 -j KUBE-SVC-EPTCW4GXRLCJJ2N3
-A KUBE-SERVICES -d 192.0.2.10/32 -p tcp -m comment --comment "default/legacy external IP" -m tcp --dport 80 -j KUBE-EXT-EPTCW4GXRLCJJ2N3
""",
        rules="""\
-A KUBE-EXT-EPTCW4GXRLCJJ2N3 -m comment --comment "masquerade traffic for default/legacy external destinations" -j KUBE-MARK-MASQ
-A KUBE-EXT-EPTCW4GXRLCJJ2N3 -j KUBE-SVC-EPTCW4GXRLCJJ2N3
-A KUBE-SVC-EPTCW4GXRLCJJ2N3 -m comment --comment "default/legacy -> 10.244.1.6:80" -j KUBE-SEP-PDJKSXXFL2OR4X67
-A KUBE-SEP-PDJKSXXFL2OR4X67 -s 10.244.1.6/32 -m comment --comment "default/legacy" -j MARK --set-xmark 0x4000/0x4000
-A KUBE-SEP-PDJKSXXFL2OR4X67 -p tcp -m comment --comment "default/legacy" -m tcp -j DNAT --to-destination 10.244.1.6:80
""",
    )


def test_client_ip_session_affinity() -> None:
    """ClientIP affinity checks each endpoint's `recent` list first and records the choice with `recent --set`."""
    out = render_rules(
        [svc("sticky", cluster_ip="10.96.0.9", session_affinity="ClientIP",
             session_affinity_config={"client_ip": {"timeout_seconds": 60}},
             ports=[{"name": "http", "port": 80}])],
        [slice_of("sticky", subset(["10.244.1.7", "10.244.2.7"], ports=[("http", 8080, "TCP")]))],
        N1,
    )
    assert out == golden(
        chains="""\
:KUBE-SVC-T2ECBIYT2WDZZK45 - [0:0]
:KUBE-SEP-DJPWA4BISD36VA6D - [0:0]
:KUBE-SEP-ZVFENLIWROBMBPG3 - [0:0]
""",
        services="""\
-A KUBE-SERVICES -d 10.96.0.9/32 -p tcp -m comment --comment "default/sticky:http cluster IP" -m tcp --dport 80 -j KUBE-SVC-T2ECBIYT2WDZZK45
""",
        rules="""\
-A KUBE-SVC-T2ECBIYT2WDZZK45 -m comment --comment "default/sticky:http -> 10.244.1.7:8080" -m recent --rcheck --seconds 60 --reap --name KUBE-SEP-DJPWA4BISD36VA6D --mask 255.255.255.255 --rsource -j KUBE-SEP-DJPWA4BISD36VA6D
-A KUBE-SVC-T2ECBIYT2WDZZK45 -m comment --comment "default/sticky:http -> 10.244.2.7:8080" -m recent --rcheck --seconds 60 --reap --name KUBE-SEP-ZVFENLIWROBMBPG3 --mask 255.255.255.255 --rsource -j KUBE-SEP-ZVFENLIWROBMBPG3
-A KUBE-SVC-T2ECBIYT2WDZZK45 -m comment --comment "default/sticky:http -> 10.244.1.7:8080" -m statistic --mode random --probability 0.50000000000 -j KUBE-SEP-DJPWA4BISD36VA6D
-A KUBE-SVC-T2ECBIYT2WDZZK45 -m comment --comment "default/sticky:http -> 10.244.2.7:8080" -j KUBE-SEP-ZVFENLIWROBMBPG3
-A KUBE-SEP-DJPWA4BISD36VA6D -s 10.244.1.7/32 -m comment --comment "default/sticky:http" -j MARK --set-xmark 0x4000/0x4000
-A KUBE-SEP-DJPWA4BISD36VA6D -p tcp -m comment --comment "default/sticky:http" -m recent --set --name KUBE-SEP-DJPWA4BISD36VA6D --mask 255.255.255.255 --rsource -m tcp -j DNAT --to-destination 10.244.1.7:8080
-A KUBE-SEP-ZVFENLIWROBMBPG3 -s 10.244.2.7/32 -m comment --comment "default/sticky:http" -j MARK --set-xmark 0x4000/0x4000
-A KUBE-SEP-ZVFENLIWROBMBPG3 -p tcp -m comment --comment "default/sticky:http" -m recent --set --name KUBE-SEP-ZVFENLIWROBMBPG3 --mask 255.255.255.255 --rsource -m tcp -j DNAT --to-destination 10.244.2.7:8080
""",
    )


def test_no_ready_endpoints_rejects_in_filter() -> None:
    """Without a ready endpoint the nat rules stay (an empty KUBE-SVC) and filter REJECTs cluster IP, external IP and node port."""
    out = render_rules(
        [svc("empty", cluster_ip="10.96.0.11", type="NodePort", external_ips=["192.0.2.11"],
             ports=[{"name": "http", "port": 80, "node_port": 30081}])],
        [slice_of("empty", subset([], ["10.244.1.8"], [("http", 8080, "TCP")]))],
        N1,
    )
    assert out == golden(
        filter_rules="""\
-A KUBE-SERVICES -d 10.96.0.11/32 -p tcp -m comment --comment "default/empty:http has no endpoints" -m tcp --dport 80 -j REJECT --reject-with tcp-reset
-A KUBE-EXTERNAL-SERVICES -d 192.0.2.11/32 -p tcp -m comment --comment "default/empty:http has no endpoints" -m tcp --dport 80 -j REJECT --reject-with tcp-reset
-A KUBE-EXTERNAL-SERVICES -p tcp -m comment --comment "default/empty:http has no endpoints" -m addrtype --dst-type LOCAL -m tcp --dport 30081 -j REJECT --reject-with tcp-reset
""",
        chains="""\
:KUBE-EXT-C6ZBJIDUTAB6GRYC - [0:0]
:KUBE-SVC-C6ZBJIDUTAB6GRYC - [0:0]
""",
        services="""\
-A KUBE-SERVICES -d 10.96.0.11/32 -p tcp -m comment --comment "default/empty:http cluster IP" -m tcp --dport 80 -j KUBE-SVC-C6ZBJIDUTAB6GRYC
-A KUBE-SERVICES -d 192.0.2.11/32 -p tcp -m comment --comment "default/empty:http external IP" -m tcp --dport 80 -j KUBE-EXT-C6ZBJIDUTAB6GRYC
""",
        nodeports="""\
-A KUBE-NODEPORTS -p tcp -m comment --comment "default/empty:http" -m tcp --dport 30081 -j KUBE-EXT-C6ZBJIDUTAB6GRYC
""",
        rules="""\
-A KUBE-EXT-C6ZBJIDUTAB6GRYC -j KUBE-SVC-C6ZBJIDUTAB6GRYC
""",
    )


def test_udp_port_without_endpoints_rejects_with_icmp() -> None:
    """A UDP port is refused with ICMP port unreachable (a TCP one with a reset)."""
    out = render_rules(
        [svc("dns", cluster_ip="10.96.0.13", ports=[{"name": "dns", "port": 53, "protocol": "UDP"}])], [], N1)
    assert out == golden(
        filter_rules="""\
-A KUBE-SERVICES -d 10.96.0.13/32 -p udp -m comment --comment "default/dns:dns has no endpoints" -m udp --dport 53 -j REJECT --reject-with icmp-port-unreachable
""",
        chains="""\
:KUBE-SVC-2MBSHUE5GJKPO227 - [0:0]
""",
        services="""\
-A KUBE-SERVICES -d 10.96.0.13/32 -p udp -m comment --comment "default/dns:dns cluster IP" -m udp --dport 53 -j KUBE-SVC-2MBSHUE5GJKPO227
""",
        rules="",
    )


def test_named_target_ports_use_the_endpoints_ports() -> None:
    """Endpoints ports are matched by the service port's name, so pods may serve a named port on different numbers."""
    out = render_rules(
        [svc("api", cluster_ip="10.96.0.12", ports=[
            {"name": "http", "port": 80, "target_port": "web"},
            {"name": "metrics", "port": 9090, "target_port": "9090"},
            {"name": "dns", "port": 53, "protocol": "UDP", "target_port": "dns"},
        ])],
        [slice_of("api", subset(["10.244.1.9", "10.244.2.9"], ports=[("http", 8080, "TCP"), ("metrics", 9090, "TCP"),
                                                                    ("dns", 5353, "UDP")])),
         slice_of("api", subset(["10.244.3.9"], ports=[("http", 8081, "TCP"), ("metrics", 9090, "TCP"),
                                                       ("dns", 5353, "UDP")]), suffix="fghij")],
        N1,
    )
    assert out == golden(
        chains="""\
:KUBE-SVC-KKDGWRPDK6Z5NCHS - [0:0]
:KUBE-SEP-L64XF55DF7OM36VM - [0:0]
:KUBE-SEP-FHEGW4O5WHI7V3NY - [0:0]
:KUBE-SEP-PSHRWGNEMTJUD3B4 - [0:0]
:KUBE-SVC-HKW6WEABBLTTNNYR - [0:0]
:KUBE-SEP-G2JOQLQW4MANNBDV - [0:0]
:KUBE-SEP-UQDIVE4OH6AXFQ4U - [0:0]
:KUBE-SEP-EMWMLNZMZ5XBOSKO - [0:0]
:KUBE-SVC-FQUPJ47UZSVCC33U - [0:0]
:KUBE-SEP-6WC5747ZE2FUGAAI - [0:0]
:KUBE-SEP-OLOSA6HDSWMEVFIJ - [0:0]
:KUBE-SEP-WLMQGM2BLHFAFHXH - [0:0]
""",
        services="""\
-A KUBE-SERVICES -d 10.96.0.12/32 -p tcp -m comment --comment "default/api:http cluster IP" -m tcp --dport 80 -j KUBE-SVC-KKDGWRPDK6Z5NCHS
-A KUBE-SERVICES -d 10.96.0.12/32 -p tcp -m comment --comment "default/api:metrics cluster IP" -m tcp --dport 9090 -j KUBE-SVC-HKW6WEABBLTTNNYR
-A KUBE-SERVICES -d 10.96.0.12/32 -p udp -m comment --comment "default/api:dns cluster IP" -m udp --dport 53 -j KUBE-SVC-FQUPJ47UZSVCC33U
""",
        rules="""\
-A KUBE-SVC-KKDGWRPDK6Z5NCHS -m comment --comment "default/api:http -> 10.244.1.9:8080" -m statistic --mode random --probability 0.33333333349 -j KUBE-SEP-L64XF55DF7OM36VM
-A KUBE-SVC-KKDGWRPDK6Z5NCHS -m comment --comment "default/api:http -> 10.244.2.9:8080" -m statistic --mode random --probability 0.50000000000 -j KUBE-SEP-FHEGW4O5WHI7V3NY
-A KUBE-SVC-KKDGWRPDK6Z5NCHS -m comment --comment "default/api:http -> 10.244.3.9:8081" -j KUBE-SEP-PSHRWGNEMTJUD3B4
-A KUBE-SEP-L64XF55DF7OM36VM -s 10.244.1.9/32 -m comment --comment "default/api:http" -j MARK --set-xmark 0x4000/0x4000
-A KUBE-SEP-L64XF55DF7OM36VM -p tcp -m comment --comment "default/api:http" -m tcp -j DNAT --to-destination 10.244.1.9:8080
-A KUBE-SEP-FHEGW4O5WHI7V3NY -s 10.244.2.9/32 -m comment --comment "default/api:http" -j MARK --set-xmark 0x4000/0x4000
-A KUBE-SEP-FHEGW4O5WHI7V3NY -p tcp -m comment --comment "default/api:http" -m tcp -j DNAT --to-destination 10.244.2.9:8080
-A KUBE-SEP-PSHRWGNEMTJUD3B4 -s 10.244.3.9/32 -m comment --comment "default/api:http" -j MARK --set-xmark 0x4000/0x4000
-A KUBE-SEP-PSHRWGNEMTJUD3B4 -p tcp -m comment --comment "default/api:http" -m tcp -j DNAT --to-destination 10.244.3.9:8081
-A KUBE-SVC-HKW6WEABBLTTNNYR -m comment --comment "default/api:metrics -> 10.244.1.9:9090" -m statistic --mode random --probability 0.33333333349 -j KUBE-SEP-G2JOQLQW4MANNBDV
-A KUBE-SVC-HKW6WEABBLTTNNYR -m comment --comment "default/api:metrics -> 10.244.2.9:9090" -m statistic --mode random --probability 0.50000000000 -j KUBE-SEP-UQDIVE4OH6AXFQ4U
-A KUBE-SVC-HKW6WEABBLTTNNYR -m comment --comment "default/api:metrics -> 10.244.3.9:9090" -j KUBE-SEP-EMWMLNZMZ5XBOSKO
-A KUBE-SEP-G2JOQLQW4MANNBDV -s 10.244.1.9/32 -m comment --comment "default/api:metrics" -j MARK --set-xmark 0x4000/0x4000
-A KUBE-SEP-G2JOQLQW4MANNBDV -p tcp -m comment --comment "default/api:metrics" -m tcp -j DNAT --to-destination 10.244.1.9:9090
-A KUBE-SEP-UQDIVE4OH6AXFQ4U -s 10.244.2.9/32 -m comment --comment "default/api:metrics" -j MARK --set-xmark 0x4000/0x4000
-A KUBE-SEP-UQDIVE4OH6AXFQ4U -p tcp -m comment --comment "default/api:metrics" -m tcp -j DNAT --to-destination 10.244.2.9:9090
-A KUBE-SEP-EMWMLNZMZ5XBOSKO -s 10.244.3.9/32 -m comment --comment "default/api:metrics" -j MARK --set-xmark 0x4000/0x4000
-A KUBE-SEP-EMWMLNZMZ5XBOSKO -p tcp -m comment --comment "default/api:metrics" -m tcp -j DNAT --to-destination 10.244.3.9:9090
-A KUBE-SVC-FQUPJ47UZSVCC33U -m comment --comment "default/api:dns -> 10.244.1.9:5353" -m statistic --mode random --probability 0.33333333349 -j KUBE-SEP-6WC5747ZE2FUGAAI
-A KUBE-SVC-FQUPJ47UZSVCC33U -m comment --comment "default/api:dns -> 10.244.2.9:5353" -m statistic --mode random --probability 0.50000000000 -j KUBE-SEP-OLOSA6HDSWMEVFIJ
-A KUBE-SVC-FQUPJ47UZSVCC33U -m comment --comment "default/api:dns -> 10.244.3.9:5353" -j KUBE-SEP-WLMQGM2BLHFAFHXH
-A KUBE-SEP-6WC5747ZE2FUGAAI -s 10.244.1.9/32 -m comment --comment "default/api:dns" -j MARK --set-xmark 0x4000/0x4000
-A KUBE-SEP-6WC5747ZE2FUGAAI -p udp -m comment --comment "default/api:dns" -m udp -j DNAT --to-destination 10.244.1.9:5353
-A KUBE-SEP-OLOSA6HDSWMEVFIJ -s 10.244.2.9/32 -m comment --comment "default/api:dns" -j MARK --set-xmark 0x4000/0x4000
-A KUBE-SEP-OLOSA6HDSWMEVFIJ -p udp -m comment --comment "default/api:dns" -m udp -j DNAT --to-destination 10.244.2.9:5353
-A KUBE-SEP-WLMQGM2BLHFAFHXH -s 10.244.3.9/32 -m comment --comment "default/api:dns" -j MARK --set-xmark 0x4000/0x4000
-A KUBE-SEP-WLMQGM2BLHFAFHXH -p udp -m comment --comment "default/api:dns" -m udp -j DNAT --to-destination 10.244.3.9:5353
""",
    )


def test_cluster_cidr_masquerades_traffic_from_outside_it() -> None:
    """With a cluster CIDR, KUBE-SVC first marks cluster-IP traffic from non-pod sources for masquerade."""
    out = render_rules(
        [svc("web", cluster_ip="10.96.0.5", ports=[{"name": "http", "port": 80}])],
        [slice_of("web", subset(["10.244.1.5"], ports=[("http", 8080, "TCP")]))],
        Node("n1", cluster_cidr="10.244.0.0/16"),
    )
    assert out == golden(
        chains="""\
:KUBE-SVC-CDGGSHYLG3RE2FKL - [0:0]
:KUBE-SEP-AFGSLHOD2HFNCBX4 - [0:0]
""",
        services="""\
-A KUBE-SERVICES -d 10.96.0.5/32 -p tcp -m comment --comment "default/web:http cluster IP" -m tcp --dport 80 -j KUBE-SVC-CDGGSHYLG3RE2FKL
""",
        rules="""\
-A KUBE-SVC-CDGGSHYLG3RE2FKL ! -s 10.244.0.0/16 -d 10.96.0.5/32 -p tcp -m comment --comment "default/web:http cluster IP" -m tcp --dport 80 -j KUBE-MARK-MASQ
-A KUBE-SVC-CDGGSHYLG3RE2FKL -m comment --comment "default/web:http -> 10.244.1.5:8080" -j KUBE-SEP-AFGSLHOD2HFNCBX4
-A KUBE-SEP-AFGSLHOD2HFNCBX4 -s 10.244.1.5/32 -m comment --comment "default/web:http" -j MARK --set-xmark 0x4000/0x4000
-A KUBE-SEP-AFGSLHOD2HFNCBX4 -p tcp -m comment --comment "default/web:http" -m tcp -j DNAT --to-destination 10.244.1.5:8080
""",
    )


@pytest.mark.parametrize("service", [
    pytest.param(svc("h", cluster_ip="None", ports=[{"port": 80}]), id="headless"),
    pytest.param(svc("x", type="ExternalName", external_name="example.com"), id="external-name"),
    pytest.param(svc("u", ports=[{"port": 80}]), id="no-cluster-ip-yet"),
    pytest.param(svc("v6", cluster_ip="fd00::1", ports=[{"port": 80}]), id="ipv6"),
])
def test_services_without_a_proxied_address_render_nothing(service) -> None:  # type: ignore[no-untyped-def]
    """Headless, ExternalName, unallocated and IPv6-only Services get no rules at all."""
    assert render_rules([service], [slice_of(service.metadata.name, subset(["10.244.1.5"], ports=[("", 80, "TCP")]))],
                        N1) == golden(chains="", services="", rules="")


def test_objects_are_ordered_by_name_not_by_arrival() -> None:
    """The payload does not depend on the order Services and Endpoints are given in."""
    services = [svc(f"s{i}", cluster_ip=f"10.96.1.{i}", ports=[{"port": 80}]) for i in range(1, 6)]
    endpoints = [slice_of(f"s{i}", subset([f"10.244.1.{i}"], ports=[("", 80, "TCP")])) for i in range(1, 6)]
    assert render_rules(services, endpoints, N1) == render_rules(services[::-1], endpoints[::-1], N1)


def test_local_load_balancer_with_source_ranges() -> None:
    """externalTrafficPolicy Local and loadBalancerSourceRanges: the LB IP goes through KUBE-FW (ranges only) to
    KUBE-EXT, which sends the node's own traffic to KUBE-SVC and the rest to KUBE-SVL (this node's endpoint), and
    filter drops LB traffic that was not DNATed."""
    out = render_rules(
        [svc("edge", cluster_ip="10.96.0.7", type="LoadBalancer", external_traffic_policy="Local",
             load_balancer_source_ranges=["203.0.113.0/24"], ports=[{"name": "https", "port": 443, "node_port": 31443}],
             status={"load_balancer": {"ingress": [{"ip": "10.250.0.130"}]}})],
        [slice_of("edge", subset(["10.244.1.8", "10.244.2.8"], ports=[("https", 8443, "TCP")]),
                  nodes={"10.244.1.8": "n1", "10.244.2.8": "n2"})],
        N1,
    )
    assert out == golden(
        filter_rules="""\
-A KUBE-EXTERNAL-SERVICES -d 10.250.0.130/32 -p tcp -m comment --comment "default/edge:https traffic not accepted by KUBE-FW-QCFLP2V2YBSUHVTW" -m tcp --dport 443 -j DROP
""",
        chains="""\
:KUBE-FW-QCFLP2V2YBSUHVTW - [0:0]
:KUBE-EXT-QCFLP2V2YBSUHVTW - [0:0]
:KUBE-SVC-QCFLP2V2YBSUHVTW - [0:0]
:KUBE-SVL-QCFLP2V2YBSUHVTW - [0:0]
:KUBE-SEP-YCW4WJ4OL5TPUODO - [0:0]
:KUBE-SEP-3BZEANMXYCUPRXAT - [0:0]
""",
        services="""\
-A KUBE-SERVICES -d 10.96.0.7/32 -p tcp -m comment --comment "default/edge:https cluster IP" -m tcp --dport 443 -j KUBE-SVC-QCFLP2V2YBSUHVTW
-A KUBE-SERVICES -d 10.250.0.130/32 -p tcp -m comment --comment "default/edge:https loadbalancer IP" -m tcp --dport 443 -j KUBE-FW-QCFLP2V2YBSUHVTW
""",
        nodeports="""\
-A KUBE-NODEPORTS -p tcp -m comment --comment "default/edge:https" -m tcp --dport 31443 -j KUBE-EXT-QCFLP2V2YBSUHVTW
""",
        rules="""\
-A KUBE-FW-QCFLP2V2YBSUHVTW -s 203.0.113.0/24 -m comment --comment "default/edge:https loadbalancer IP" -j KUBE-EXT-QCFLP2V2YBSUHVTW
-A KUBE-EXT-QCFLP2V2YBSUHVTW -m comment --comment "masquerade LOCAL traffic for default/edge:https external destinations" -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ
-A KUBE-EXT-QCFLP2V2YBSUHVTW -m comment --comment "route LOCAL traffic for default/edge:https external destinations" -m addrtype --src-type LOCAL -j KUBE-SVC-QCFLP2V2YBSUHVTW
-A KUBE-EXT-QCFLP2V2YBSUHVTW -j KUBE-SVL-QCFLP2V2YBSUHVTW
-A KUBE-SVC-QCFLP2V2YBSUHVTW -m comment --comment "default/edge:https -> 10.244.1.8:8443" -m statistic --mode random --probability 0.50000000000 -j KUBE-SEP-YCW4WJ4OL5TPUODO
-A KUBE-SVC-QCFLP2V2YBSUHVTW -m comment --comment "default/edge:https -> 10.244.2.8:8443" -j KUBE-SEP-3BZEANMXYCUPRXAT
-A KUBE-SVL-QCFLP2V2YBSUHVTW -m comment --comment "default/edge:https -> 10.244.1.8:8443" -j KUBE-SEP-YCW4WJ4OL5TPUODO
-A KUBE-SEP-YCW4WJ4OL5TPUODO -s 10.244.1.8/32 -m comment --comment "default/edge:https" -j MARK --set-xmark 0x4000/0x4000
-A KUBE-SEP-YCW4WJ4OL5TPUODO -p tcp -m comment --comment "default/edge:https" -m tcp -j DNAT --to-destination 10.244.1.8:8443
-A KUBE-SEP-3BZEANMXYCUPRXAT -s 10.244.2.8/32 -m comment --comment "default/edge:https" -j MARK --set-xmark 0x4000/0x4000
-A KUBE-SEP-3BZEANMXYCUPRXAT -p tcp -m comment --comment "default/edge:https" -m tcp -j DNAT --to-destination 10.244.2.8:8443
""",
    )


def test_internal_local_without_a_local_endpoint_drops() -> None:
    """internalTrafficPolicy Local with endpoints only elsewhere: the cluster IP leads to an empty KUBE-SVL and
    filter drops the connection ("has no local endpoints"), unlike a Service without endpoints, which rejects."""
    out = render_rules(
        [svc("node-local", cluster_ip="10.96.0.13", internal_traffic_policy="Local",
             ports=[{"name": "http", "port": 80}])],
        [slice_of("node-local", subset(["10.244.2.8"], ports=[("http", 8080, "TCP")]), nodes={"10.244.2.8": "n2"})],
        N1,
    )
    assert out == golden(
        filter_rules="""\
-A KUBE-SERVICES -d 10.96.0.13/32 -p tcp -m comment --comment "default/node-local:http has no local endpoints" -m tcp --dport 80 -j DROP
""",
        chains="""\
:KUBE-SVL-DCRKDIWN45MPZN6I - [0:0]
""",
        services="""\
-A KUBE-SERVICES -d 10.96.0.13/32 -p tcp -m comment --comment "default/node-local:http cluster IP" -m tcp --dport 80 -j KUBE-SVL-DCRKDIWN45MPZN6I
""",
        rules="",
    )
