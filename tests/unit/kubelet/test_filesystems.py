"""Which mount holds a path, from mountinfo lines, and which pods' volume files all stay in the pods directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from api import convert
from api.pb import core_pb2
from kubelet import filesystems
from kubelet import volumes as kubelet_volumes

MOUNTINFO = """\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
25 22 0:21 / /dev/shm rw,nosuid,nodev shared:3 - tmpfs tmpfs rw
30 22 8:2 / /var/lib rw shared:4 - xfs /dev/sda2 rw
31 30 0:40 / /var/lib/kubelite/pods/u1/volumes/token rw - tmpfs tmpfs rw,size=1024k
40 22 0:50 / /mnt/with\\040space rw - ramfs none rw
41 22 0:51 / /over rw - ext4 /dev/sdb1 rw
42 22 0:52 / /over rw - tmpfs tmpfs rw
"""


@pytest.mark.parametrize(("path", "mount", "fstype"), [
    ("/dev/shm/kubelite-hollow-x/n1/pods", "/dev/shm", "tmpfs"),
    ("/dev/shmx/a", "/", "ext4"),  # a name that only starts like a mount point is not under it
    ("/var/lib/kubelite/pods", "/var/lib", "xfs"),
    ("/var/lib/kubelite/pods/u1/volumes/token/token", "/var/lib/kubelite/pods/u1/volumes/token", "tmpfs"),
    ("/mnt/with space/pods", "/mnt/with space", "ramfs"),
    ("/over/pods", "/over", "tmpfs"),  # the later mount on a point hides the earlier
    ("/", "/", "ext4"),
])
def test_the_mount_that_holds_a_path(path: str, mount: str, fstype: str) -> None:
    assert filesystems.mount_of(MOUNTINFO, path) == (mount, fstype)


def test_a_line_that_cannot_be_read_is_skipped() -> None:
    assert filesystems.mount_of("garbage\n22 1 8:1 / / rw - ext4 /dev/sda1 rw\n", "/a") == ("/", "ext4")


def test_this_machines_own_shm_and_proc() -> None:
    shm = Path("/dev/shm")
    if shm.is_dir():
        assert filesystems.in_memory(shm / "not-made-yet" / "pods")
    assert filesystems.in_memory(Path("/proc/self")) is False


@pytest.mark.parametrize(("volumes", "within"), [
    ([], True),
    ([{"name": "t", "projected": {"sources": []}}, {"name": "c", "configMap": {"name": "c"}},
      {"name": "s", "secret": {"secretName": "s"}}, {"name": "d", "downwardAPI": {}}, {"name": "e", "emptyDir": {}}],
     True),
    ([{"name": "h", "hostPath": {"path": "/data"}}], False),
    ([{"name": "e", "emptyDir": {}}, {"name": "p", "persistentVolumeClaim": {"claimName": "c"}}], False),
])
def test_which_pods_keep_their_volume_files_in_the_pods_directory(volumes: list[dict[str, object]],
                                                                   within: bool) -> None:
    pod = convert.from_dict(core_pb2.Pod, {"metadata": {"name": "p"}, "spec": {
        "containers": [{"name": "c", "image": "busybox"}], "volumes": volumes}})
    assert kubelet_volumes.within_pods_dir(pod) is within
