"""Fixtures for proxy tests: scratch network namespaces (`kltest-*`), always deleted."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from integration.proxy.proxyhelp import MODES, add_netns, del_netns

MakeNetns = Callable[[str], str]


@pytest.fixture
def make_netns() -> Iterator[MakeNetns]:
    """Create scratch namespaces (`kltest-<hex>-<role>`); all of them are deleted after the test."""
    made: list[str] = []

    def make(role: str = "node") -> str:
        name = add_netns(role)
        made.append(name)
        return name

    try:
        yield make
    finally:
        for name in made:
            del_netns(name)


@pytest.fixture
def node_ns(make_netns: MakeNetns) -> str:
    return make_netns("node")


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    """Each proxy test runs in both modes: iptables and nftables."""
    return request.param  # type: ignore[no-any-return]
