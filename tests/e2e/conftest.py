"""The lab for end-to-end tests: one 3-node cluster per session, torn down even on failure;
every component's log is printed when a test failed."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Iterator

import pytest

from deploy.lab import cluster

from .lab import Lab

_failed: list[str] = []


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.failed and "e2e" in item.keywords:
        _failed.append(item.nodeid)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    if os.geteuid() != 0:
        pytest.fail("end-to-end tests need root (network namespaces, containerd)")
    # `up` writes the user's config file (and the admin's credentials beside it): a scratch one, not ~/.kubelite.
    os.environ["KUBELITE_CONFIG"] = str(tmp_path_factory.mktemp("kubelite-config") / "config.yaml")
    name = f"e2e{secrets.token_hex(2)}"
    lines: list[str] = []
    try:
        plan = asyncio.run(cluster.up(name, 3, progress=lines.append, timeout=120))
    except BaseException:
        print("\n".join(lines))
        print(Lab(cluster.plan_lab(name, 3)).logs_text())
        asyncio.run(cluster.down(name, progress=lambda _: None))
        raise
    lab = Lab(plan)
    try:
        yield lab
    finally:
        if _failed:
            print(f"\n{len(_failed)} end-to-end test(s) failed: {', '.join(_failed)}; component logs follow")
            print(lab.logs_text())
        asyncio.run(cluster.down(name, progress=lambda _: None))
