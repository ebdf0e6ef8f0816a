"""Names that cannot go into an iptables rule (control characters, anything not a DNS label) are refused:
the Service is left out, never written as a broken rule that would take every other Service down with it."""

from __future__ import annotations

import pytest

from proxy.rules import Node, quote, render_rules, render_service
from proxy.services import ServicePort, compute_service_ports
from unit.proxy.objects import slice_of, subset, svc

NODE = Node("n1")


def _web(name: str = "web", ns: str = "default", port_name: str = "http") -> object:
    return svc(name, ns, cluster_ip="10.96.0.10", type="NodePort",
               ports=[{"name": port_name, "port": 80, "node_port": 30080}])


@pytest.mark.parametrize("service", [
    pytest.param(_web(name="web\n"), id="name-trailing-newline"),
    pytest.param(_web(name="a\tb"), id="name-tab"),
    pytest.param(_web(name="web\x1b[31m"), id="name-escape-sequence"),
    pytest.param(_web(ns="default\n"), id="namespace-newline"),
    pytest.param(_web(name='we"b'), id="name-quote"),
    pytest.param(_web(name="web\u2028x"), id="name-line-separator"),
])
def test_service_with_an_unsafe_name_is_left_out(service: object) -> None:
    """A Service whose name or namespace is not a DNS label yields no rule; the others' rules are whole."""
    good = _web(name="good")
    payload = render_rules([good, service], [slice_of("good", subset(["10.244.1.5"], ports=[("http", 8080, "TCP")]))],
                           NODE)  # type: ignore[list-item]
    assert compute_service_ports(service) == []  # type: ignore[arg-type]
    assert "default/good:http" in payload
    assert payload.count("default/good:http cluster IP") == 1
    for line in payload.splitlines():
        assert line.startswith(("*", ":", "-A ", "-X ", "COMMIT")), repr(line)
        if line.startswith("-A "):
            assert " -j " in line, line
    assert "\t" not in payload and "\x1b" not in payload and "\u2028" not in payload


def test_port_with_an_unsafe_name_is_left_out() -> None:
    """A port whose name holds a control character is skipped; the Service's other ports are programmed."""
    service = svc("web", cluster_ip="10.96.0.10", ports=[{"name": "ok", "port": 80}, {"name": "x\ny", "port": 81}])
    assert [p.port_name for p in compute_service_ports(service)] == ["ok"]


def test_render_refuses_a_control_character_it_is_handed() -> None:
    """Handed a port named with a newline directly, rendering raises instead of writing a broken rule."""
    sp = ServicePort(namespace="default", name="web\n", port_name="", protocol="TCP", port=80, cluster_ip="10.96.0.10")
    with pytest.raises(ValueError, match="control character"):
        render_service([sp], [], NODE)
    with pytest.raises(ValueError, match="control character"):
        quote("a\tb")
