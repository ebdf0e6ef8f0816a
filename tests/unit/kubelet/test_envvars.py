"""Container environments: service links, fieldRef/resourceFieldRef, $(VAR) expansion."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from api.pb import core_pb2
from kubelet.envvars import EnvError, PodContext, container_env, expand, expand_command, pod_service_env, service_env

from .podbuild import make_pod

CTX = PodContext(node_name="node-1", host_ip="192.168.1.10", pod_ip="10.244.1.7", allocatable_cpu_milli=2000,
                 allocatable_memory=8 << 30)


def svc(name: str, ip: str, *ports: tuple[str, int, str], namespace: str = "default") -> core_pb2.Service:
    s = core_pb2.Service(metadata={"name": name, "namespace": namespace})
    s.spec.cluster_ip = ip
    for pname, port, proto in ports:
        s.spec.ports.add(name=pname, port=port, protocol=proto)
    return s


def test_service_links_docker_style() -> None:
    """A service gives _SERVICE_HOST/_PORT, named ports, and docker-link _PORT_<port>_<PROTO> variables."""
    env = service_env([svc("redis-master", "10.96.0.11", ("", 6379, "TCP"), ("metrics", 9121, "TCP"))])
    assert env == {
        "REDIS_MASTER_SERVICE_HOST": "10.96.0.11",
        "REDIS_MASTER_SERVICE_PORT": "6379",
        "REDIS_MASTER_SERVICE_PORT_METRICS": "9121",
        "REDIS_MASTER_PORT": "tcp://10.96.0.11:6379",
        "REDIS_MASTER_PORT_6379_TCP": "tcp://10.96.0.11:6379",
        "REDIS_MASTER_PORT_6379_TCP_PROTO": "tcp",
        "REDIS_MASTER_PORT_6379_TCP_PORT": "6379",
        "REDIS_MASTER_PORT_6379_TCP_ADDR": "10.96.0.11",
        "REDIS_MASTER_PORT_9121_TCP": "tcp://10.96.0.11:9121",
        "REDIS_MASTER_PORT_9121_TCP_PROTO": "tcp",
        "REDIS_MASTER_PORT_9121_TCP_PORT": "9121",
        "REDIS_MASTER_PORT_9121_TCP_ADDR": "10.96.0.11",
    }


def test_headless_and_portless_services_skipped() -> None:
    """Services without a cluster IP (headless) or ports give no variables."""
    assert service_env([svc("headless", "None", ("", 80, "TCP")), svc("bare", "10.96.0.3")]) == {}


def test_pod_sees_own_namespace_and_master_service() -> None:
    """Links cover the pod's namespace plus `kubernetes` in default; enableServiceLinks false keeps only the latter."""
    pod = make_pod("a", namespace="shop")
    services = [svc("kubernetes", "10.96.0.1", ("https", 443, "TCP")), svc("web", "10.96.0.20", ("", 80, "TCP")),
                svc("cart", "10.96.0.30", ("", 80, "TCP"), namespace="shop")]
    env = pod_service_env(pod, services)
    assert "CART_SERVICE_HOST" in env and "KUBERNETES_SERVICE_HOST" in env and "WEB_SERVICE_HOST" not in env
    pod.spec.enable_service_links = False
    assert set(pod_service_env(pod, services)) == {k for k in env if k.startswith("KUBERNETES_")}


def test_container_env_order_refs_and_expansion() -> None:
    """Own variables come first in order with fieldRefs resolved and $(VAR) expanded; unset service links follow."""
    pod = make_pod("a")
    pod.metadata.labels["app"] = "web"
    c = pod.spec.containers[0]
    c.env.add(name="POD", value_from={"field_ref": {"field_path": "metadata.name"}})
    c.env.add(name="IP", value_from={"field_ref": {"field_path": "status.podIP"}})
    c.env.add(name="NODE", value_from={"field_ref": {"field_path": "spec.nodeName"}})
    c.env.add(name="APP", value_from={"field_ref": {"field_path": "metadata.labels['app']"}})
    c.env.add(name="URL", value="http://$(IP):$(WEB_SERVICE_PORT)/$(MISSING)/$$(IP)")
    c.env.add(name="WEB_SERVICE_HOST", value="overridden")
    env = container_env(pod, c, services={"WEB_SERVICE_HOST": "10.96.0.20", "WEB_SERVICE_PORT": "80"}, ctx=CTX)
    assert list(env.items()) == [
        ("POD", "web"), ("IP", "10.244.1.7"), ("NODE", "node-1"), ("APP", "web"),
        ("URL", "http://10.244.1.7:80/$(MISSING)/$(IP)"), ("WEB_SERVICE_HOST", "overridden"),
        ("WEB_SERVICE_PORT", "80"),
    ]


def test_resource_field_ref() -> None:
    """resourceFieldRef reads limits/requests with a divisor; unset limits fall back to the node's allocatable."""
    pod = make_pod("a")
    c = pod.spec.containers[0]
    c.resources.limits["memory"] = "128Mi"
    c.resources.requests["cpu"] = "250m"
    c.env.add(name="MEM", value_from={"resource_field_ref": {"resource": "limits.memory", "divisor": "1Mi"}})
    c.env.add(name="CPU", value_from={"resource_field_ref": {"resource": "requests.cpu", "divisor": "1m"}})
    c.env.add(name="CPU_LIMIT", value_from={"resource_field_ref": {"resource": "limits.cpu"}})
    env = container_env(pod, c, services={}, ctx=CTX)
    assert (env["MEM"], env["CPU"], env["CPU_LIMIT"]) == ("128", "250", "2")


def test_unsupported_source_is_an_error() -> None:
    """Sources kubelite cannot resolve are reported, not silently empty."""
    pod = make_pod("a")
    pod.spec.containers[0].env.add(name="X", value_from={"field_ref": {"field_path": "spec.nope"}})
    with pytest.raises(EnvError, match=r"spec\.nope"):
        container_env(pod, pod.spec.containers[0], services={}, ctx=CTX)


def test_command_expansion() -> None:
    """Command and args expand $(VAR) from the container's environment."""
    c = core_pb2.Container(name="a", command=["sh", "-c"], args=["echo $(GREETING) $(UNSET) $$(GREETING)"])
    assert expand_command(c, {"GREETING": "hi"}) == (("sh", "-c"), ("echo hi $(UNSET) $(GREETING)",))


@given(st.text(alphabet="ab$()_", max_size=30))
def test_expand_without_variables_only_unescapes(text: str) -> None:
    """With no variables defined, expansion only turns $$ into $ and leaves references as written."""
    out = expand(text, lambda name: None)
    assert out == expand(text, {}.get)
    assert len(out) <= len(text)
    if "$" not in text:
        assert out == text
