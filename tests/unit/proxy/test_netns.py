"""Telling the root network namespace apart, even where /proc/1/ns/net is unreadable."""

from __future__ import annotations

import pytest

from proxy import netns
from proxy.netns import INIT_NET_INODE, compute_verdict

NS = 4  # nsfs device number


@pytest.mark.parametrize("target,init,named,root", [
    pytest.param((NS, 100), (NS, 100), {}, True, id="same-as-pid-1"),
    pytest.param((NS, 101), (NS, 100), {}, False, id="differs-from-pid-1"),
    pytest.param((NS, INIT_NET_INODE), None, {}, True, id="fixed-init-inode"),
    pytest.param((NS, INIT_NET_INODE), None, {"kl-x-n1": (NS, INIT_NET_INODE)}, True, id="init-even-if-named"),
    pytest.param((NS, 0xF0000100), None, {"kl-x-n1": (NS, 0xF0000100)}, False, id="named-namespace"),
    pytest.param((NS, 0xF0000100), None, {"other": (NS, 0xF0000101)}, True, id="unknown-is-refused"),
])
def test_verdict(target: tuple[int, int], init: tuple[int, int] | None, named: dict, root: bool) -> None:
    """pid 1 decides when readable; else the fixed init inode, else membership of /run/netns; else refuse."""
    assert compute_verdict(target, init, named).root is root


def test_missing_namespace_is_refused() -> None:
    """A namespace that cannot be opened is never written to."""
    assert netns.check("/run/netns/kltest-does-not-exist").root
