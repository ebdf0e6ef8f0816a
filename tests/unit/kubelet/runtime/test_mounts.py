"""Mount points under a directory, from mountinfo: the kernel's escapes, the directory's neighbours, and a real
tmpfs whose path has a space in it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from kubelet.runtime import mounts

MOUNTINFO = """\
22 1 8:1 / / rw,relatime - ext4 /dev/vda rw
90 22 0:50 / /var/lib/k/pods/u1/volumes/kubernetes.io~empty-dir/data rw - tmpfs tmpfs rw
91 22 0:51 / /var/lib/k/pods/u1/volumes/kubernetes.io~projected/kube-api-access rw - tmpfs tmpfs rw
92 22 0:52 / /var/lib/k/pods/u10/volumes/kubernetes.io~empty-dir/data rw - tmpfs tmpfs rw
93 22 0:53 / /var/lib/k/pods/my\\040pod/x rw - tmpfs tmpfs rw
94 22 0:54 / /var/lib/k/pods/back\\134slash rw - tmpfs tmpfs rw
95 22 0:55 / /var/lib/k/pods/u1 rw - tmpfs tmpfs rw
96 22 0:56 /var/lib/k/pods/u1 /mnt/elsewhere rw - ext4 /dev/vda rw
"""


@pytest.mark.parametrize(
    ("root", "expected"),
    [
        pytest.param("/var/lib/k/pods/u1", ["/var/lib/k/pods/u1/volumes/kubernetes.io~empty-dir/data",
                                            "/var/lib/k/pods/u1/volumes/kubernetes.io~projected/kube-api-access",
                                            "/var/lib/k/pods/u1"], id="a pod's mounts, not u10's, not a bind's source"),
        pytest.param("/var/lib/k/pods/u1/", ["/var/lib/k/pods/u1/volumes/kubernetes.io~empty-dir/data",
                                             "/var/lib/k/pods/u1/volumes/kubernetes.io~projected/kube-api-access",
                                             "/var/lib/k/pods/u1"], id="trailing slash"),
        pytest.param("/var/lib/k/pods/my pod", ["/var/lib/k/pods/my pod/x"], id="space escaped as \\040"),
        pytest.param("/var/lib/k/pods/back\\slash", ["/var/lib/k/pods/back\\slash"], id="backslash escaped as \\134"),
        pytest.param("/var/lib/k/pods/u2", [], id="nothing mounted"),
        pytest.param("/mnt", ["/mnt/elsewhere"], id="a bind mount by its mount point"),
    ],
)
def test_points_under(root: str, expected: list[str]) -> None:
    assert mounts.points_under(Path(root), MOUNTINFO) == expected


@pytest.mark.parametrize("path", ["plain", "a b", "tab\there", "back\\slash", "new\nline", "ünï"])
def test_escape_round_trips(path: str) -> None:
    assert mounts.unescape(mounts.escape(path)) == path
    assert not any(c in mounts.escape(path) for c in " \t\n")


def test_a_real_tmpfs_under_a_spaced_path_is_found_and_unmounted(tmp_path: Path) -> None:
    """What the kernel writes for a path with a space is what points_under looks for; unmount_all leaves none."""
    top = tmp_path / "pod dir"
    inner = top / "volumes" / "data"
    inner.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(inner)], check=True)
    try:
        assert mounts.points_under(top) == [str(inner)]
        assert mounts.points_under(tmp_path / "pod") == []
        assert mounts.unmount_all(top) == []
        assert mounts.points_under(top) == []
    finally:
        subprocess.run(["umount", "-l", str(inner)], check=False, capture_output=True)
