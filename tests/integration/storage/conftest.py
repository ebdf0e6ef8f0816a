"""Fixtures of the storage tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .helpers import Member, three_members


@pytest.fixture
def members() -> Iterator[list[Member]]:
    """Three etcd members on loopback, clients over mutual TLS, with kubelite's limits."""
    with three_members() as out:
        yield out
