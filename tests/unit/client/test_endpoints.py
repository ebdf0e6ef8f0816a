"""A client's list of apiservers: the gRPC target it becomes and the name checked on their certificates."""

from __future__ import annotations

import pytest

from client.config import SHARED_NAME, ClientConfig, ConfigError, grpc_target, server_endpoints
from client.tls import server_name_options


@pytest.mark.parametrize(("server", "target"), [
    pytest.param("10.250.0.2:6443", "10.250.0.2:6443", id="one-address-unchanged"),
    pytest.param("unix:///run/a.sock", "unix:///run/a.sock", id="one-socket-unchanged"),
    pytest.param("kube.example:6443", "kube.example:6443", id="one-name-unchanged"),
    pytest.param("10.250.0.2:6443,10.250.0.3:6443", "ipv4:10.250.0.2:6443,10.250.0.3:6443", id="addresses"),
    pytest.param(" 10.250.0.2:6443 , 10.250.0.3:6443", "ipv4:10.250.0.2:6443,10.250.0.3:6443", id="spaces"),
    pytest.param("10.250.0.2:6443,10.250.0.2:6443", "10.250.0.2:6443", id="repeated-once"),
    pytest.param("unix:///run/a.sock,unix:///run/b.sock", "unix:/run/a.sock,/run/b.sock", id="sockets"),
])
def test_grpc_target(server: str, target: str) -> None:
    """One apiserver stays as given; several become one target over which grpc's pick_first fails over."""
    assert grpc_target(server) == target


@pytest.mark.parametrize(("server", "message"), [
    pytest.param("10.250.0.2:6443,", "empty apiserver address", id="trailing-comma"),
    pytest.param("", "empty apiserver address", id="empty"),
    pytest.param("unix:///a.sock,10.250.0.2:6443", "not both", id="mixed"),
    pytest.param("a.example:6443,b.example:6443", "not an IPv4 address:port", id="names"),
    pytest.param("10.250.0.2,10.250.0.3", "not an IPv4 address:port", id="no-port"),
])
def test_bad_lists_are_refused_naming_the_server(server: str, message: str) -> None:
    """A list grpc could not dial is refused with the setting in the message."""
    with pytest.raises(ConfigError, match=message):
        grpc_target(server)


def test_endpoints_keep_their_order() -> None:
    """The first listed apiserver is the one a client tries first."""
    assert server_endpoints("10.0.0.3:1,10.0.0.1:1,10.0.0.2:1") == ["10.0.0.3:1", "10.0.0.1:1", "10.0.0.2:1"]


def test_several_apiservers_are_checked_by_the_name_all_their_certificates_carry() -> None:
    """With one address the address is checked (no override); with several, the name every apiserver carries."""
    assert server_name_options(ClientConfig(server="10.250.0.2:6443")) == []
    assert server_name_options(ClientConfig(server="10.250.0.2:6443,10.250.0.3:6443")) == \
        [("grpc.ssl_target_name_override", SHARED_NAME)]
    assert server_name_options(ClientConfig(server="unix:///a.sock,unix:///b.sock")) == \
        [("grpc.ssl_target_name_override", "localhost")]
