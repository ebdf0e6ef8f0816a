"""The first code a process-runtime child runs: join the pod, then exec.

Run as `python -I -S procinit.py SPEC_JSON` (stdlib only, so it starts in a
few milliseconds). It does the namespace work in a fresh single-threaded
process, where setns/unshare are safe, rather than in a fork of the
multi-threaded kubelet. Steps, in order: die with the parent, join cgroups,
join the pod's namespaces, make new ones, set the hostname and sysctls,
bind mounts, chdir, exec. Any failure is written to the status fd, which
otherwise closes on exec, so the runtime can tell "started" from "failed".
"""

from __future__ import annotations

import ctypes
import fcntl
import json
import os
import signal
import socket
import struct
import sys

CLONE = {"mnt": 0x00020000, "uts": 0x04000000, "ipc": 0x08000000, "net": 0x40000000}
MS_RDONLY, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 0x1, 0x20, 0x1000, 0x4000, 0x40000
PR_SET_PDEATHSIG = 1
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1

libc = ctypes.CDLL(None, use_errno=True)


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _loopback_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        req = struct.pack("16sH22x", b"lo", 0)
        flags = struct.unpack("16sH22x", fcntl.ioctl(s, SIOCGIFFLAGS, req))[1]
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH22x", b"lo", flags | IFF_UP))


def _mount(source: str, target: str, flags: int) -> None:
    _check(libc.mount(source.encode(), target.encode(), None, flags, None), f"mount {source} on {target}")


def setup(spec: dict) -> None:
    _check(libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "prctl")
    pid = str(os.getpid())
    for procs in spec.get("cgroups", []):
        with open(procs, "w") as f:
            f.write(pid)
    # Open every namespace first: joining a mount namespace changes what paths mean.
    joins = [(kind, os.open(path, os.O_RDONLY)) for kind, path in spec.get("join", {}).items()]
    for kind, fd in sorted(joins, key=lambda j: j[0] == "mnt"):
        _check(libc.setns(fd, 0), f"setns {kind}")
        os.close(fd)
    new = spec.get("unshare", [])
    mounts = spec.get("mounts", [])
    if mounts and "mnt" not in spec.get("join", {}):
        new = [*new, "mnt"]
    if new:
        _check(libc.unshare(sum(CLONE[k] for k in new)), "unshare " + ",".join(new))
    if "net" in new:
        _loopback_up()
    if spec.get("hostname"):
        socket.sethostname(spec["hostname"])
    for key, value in spec.get("sysctls", {}).items():
        with open("/proc/sys/" + key.replace(".", "/"), "w") as f:
            f.write(value)
    if "mnt" in new:
        # Keep our binds out of the host's mount table.
        _mount("none", "/", MS_REC | MS_PRIVATE)
        for host, target, readonly in mounts:
            _mount(host, target, MS_BIND | MS_REC)
            if readonly:
                _mount(host, target, MS_BIND | MS_REMOUNT | MS_RDONLY)
    os.chdir(spec.get("cwd") or "/")


def main() -> None:
    spec = json.loads(sys.argv[1])
    status = spec["status_fd"]
    argv = spec["argv"]
    try:
        setup(spec)
    except OSError as exc:
        _fail(status, str(exc))
    os.set_inheritable(status, False)
    try:
        os.execvpe(argv[0], argv, spec["env"])
    except OSError as exc:
        _fail(status, f"exec {argv[0]!r}: {exc.strerror}")


def _fail(status: int, message: str) -> None:
    os.write(status, message.encode())
    os._exit(127)


if __name__ == "__main__":
    main()
