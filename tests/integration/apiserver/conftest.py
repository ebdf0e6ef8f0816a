"""Fixtures shared by the apiserver's integration tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from conftest import RunningApiserver, start_apiserver

from apiserver.audit import AuditConfig


@pytest.fixture
async def audited(etcd: str, tmp_path: Path) -> AsyncIterator[RunningApiserver]:
    """An apiserver writing its audit log to tmp_path/audit.log."""
    server = await start_apiserver(etcd, audit=AuditConfig(str(tmp_path / "audit.log")))
    try:
        yield server
    finally:
        await server.stop()
