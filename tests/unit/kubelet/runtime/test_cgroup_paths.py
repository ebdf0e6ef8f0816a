"""Finding cgroup hierarchies from mountinfo."""

from __future__ import annotations

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
