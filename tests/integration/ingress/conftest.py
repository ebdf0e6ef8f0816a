"""Fixtures for ingress tests: the proxy tests' scratch namespaces (`kltest-*`), always deleted."""

from integration.proxy.conftest import make_netns  # noqa: F401  (re-exported fixture)
