"""Finding cgroup hierarchies from mountinfo."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubelet.runtime import cgroups

HYBRID = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""
UNIFIED = "30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n"


@pytest.mark.parametrize(
    ("mountinfo", "expected"),
    [
        pytest.param(HYBRID, [("/sys/fs/cgroup/cpu", 1, {"cpu"}), ("/sys/fs/cgroup/memory", 1, {"memory"}),
                              ("/sys/fs/cgroup/systemd", 1, {"name=systemd"}), ("/sys/fs/cgroup/unified", 2, set())],
                     id="hybrid"),
        pytest.param(UNIFIED, [("/sys/fs/cgroup", 2, set())], id="unified"),
    ],
)
def test_hierarchies(mountinfo: str, expected: list[tuple[str, int, set[str]]]) -> None:
    """Every cgroup mount is a hierarchy; v1 ones carry their controllers, tmpfs is skipped."""
    found = cgroups.hierarchies(mountinfo)
    assert [(str(h.mount), h.version, set(h.controllers)) for h in found] == expected


async def test_remove_refuses_root() -> None:
    """Removing "/" would mean every cgroup on the machine: refused."""
    with pytest.raises(ValueError):
        await cgroups.remove("/")


def test_this_process_hierarchies_are_read_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """mountinfo is read on the first call only: removing a pod asks every 50 ms, and at 300 pods the file has
    over a thousand lines (re-reading it starved the kubelet's lease renewals)."""
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(HYBRID)
    monkeypatch.setattr(cgroups, "MOUNTINFO", str(mountinfo))
    cgroups._mounted.cache_clear()
    try:
        first = cgroups.hierarchies()
        mountinfo.write_text(UNIFIED)
        assert cgroups.hierarchies() == first
        assert [str(p) for p in cgroups.paths("/kubelite/pod1")][:2] == ["/sys/fs/cgroup/cpu/kubelite/pod1",
                                                                         "/sys/fs/cgroup/memory/kubelite/pod1"]
    finally:
        cgroups._mounted.cache_clear()
