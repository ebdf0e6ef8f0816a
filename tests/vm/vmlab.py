"""What the VM tests share: running `kubelite` on the host and in a VM lab's namespace, polling, phase timings,
and the checks that a lab left nothing behind."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from deploy.vm import lab
from deploy.vm.plan import VmLabPlan

ROOT = Path(__file__).resolve().parents[2]
KUBELITE = str(Path(sys.executable).with_name("kubelite"))


class Phases:
    """Times each phase of the test and prints it as it ends."""

    def __init__(self, capsys: pytest.CaptureFixture[str], budget: float) -> None:
        self.capsys = capsys
        self.budget = budget
        self.seconds: dict[str, float] = {}
        self.start = time.monotonic()

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        start = time.monotonic()
        try:
            yield
        finally:
            self.seconds[name] = round(time.monotonic() - start, 1)
            with self.capsys.disabled():
                print(f"\nvm test phase {name}: {self.seconds[name]:.1f}s", flush=True)

    def left(self) -> float:
        return self.budget - (time.monotonic() - self.start)


def kubelite(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([KUBELITE, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    if check and result.returncode != 0:
        raise AssertionError(f"kubelite {' '.join(args)} failed ({result.returncode}):\n{result.stdout}{result.stderr}")
    return result


def in_lab(name: str, *args: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess[str]:
    """`kubelite ARGS` run from the host, in the VM lab's namespace, against the VMs' cluster."""
    return kubelite("vm", "exec", "--name", name, "--", KUBELITE, *args, timeout=timeout, check=check)


def wait_for(what: str, check, *, timeout: float, every: float = 3.0):  # type: ignore[no-untyped-def]
    """Poll `check()` until it returns something truthy; fail naming `what` and the last answer."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (AssertionError, subprocess.TimeoutExpired) as e:
            last = e
        else:
            if last:
                return last
        time.sleep(every)
    pytest.fail(f"{what}: not after {timeout:.0f}s; last: {last}")


def table(text: str) -> list[dict[str, str]]:
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return []
    header = re.split(r"\s{2,}", lines[0].strip())
    return [dict(zip(header, re.split(r"\s{2,}", line.strip()), strict=False)) for line in lines[1:]]


def ready_nodes(name: str, count: int) -> list[dict[str, str]] | None:
    rows = table(in_lab(name, "get", "nodes", "-o", "wide").stdout)
    return rows if len(rows) == count and all(r["STATUS"] == "Ready" for r in rows) else None


def pods(name: str, selector: str) -> list[dict[str, str]]:
    return table(in_lab(name, "get", "pods", "-o", "wide", "-l", selector).stdout)


def ready_web_pods(name: str, *, on: set[str] | None = None, count: int = 3) -> list[dict[str, str]] | None:
    rows = [r for r in pods(name, "app=web") if r["STATUS"] == "Running" and r["READY"] == "1/1"]
    if len(rows) == count and (on is None or {r["NODE"] for r in rows} <= on):
        return rows
    return None


def lab_leftovers(plan: VmLabPlan) -> list[str]:
    """Whatever of the lab still exists: its namespace, directory, or any of its processes."""
    left = []
    if plan.netns_path.exists():
        left.append(f"namespace {plan.netns}")
    if plan.state_dir.exists():
        left.append(str(plan.state_dir))
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if str(plan.state_dir) in cmdline or plan.domain_prefix in cmdline:
                left.append(f"process {proc.name}: {cmdline[:120]}")
    return left


def dump_logs(plan: VmLabPlan) -> None:
    """On failure: the end of every component's log on every VM, and of vagrant's, into the test's output."""
    vagrant_log = plan.state_dir / "vagrant.log"
    if vagrant_log.exists():
        print("---- vagrant.log ----\n" + "\n".join(vagrant_log.read_text(errors="replace").splitlines()[-40:]))
    if not plan.ssh_config.exists():
        return
    for machine in plan.machines:
        script = "for f in /var/log/kubelite/*.log; do echo \"---- $f\"; sudo tail -n 25 \"$f\"; done"
        try:
            out = subprocess.run([*lab.ssh_argv(plan), machine, script], capture_output=True, text=True, timeout=120)
            print(f"==== {machine} ====\n{out.stdout}{out.stderr}")
        except subprocess.TimeoutExpired:
            print(f"==== {machine}: no answer over ssh ====")


def root_links() -> set[str]:
    """This machine's own network interfaces (the lab must add none)."""
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, timeout=30, check=True).stdout
    return {line.split(":")[1].strip().split("@")[0] for line in out.splitlines()}


@contextmanager
def lab_torn_down(plan: VmLabPlan, phases: Phases, *, label: str, timeout: float = 600) -> Iterator[None]:
    """The test's body, then the lab destroyed whatever happened (each VM's logs shown first if the body failed)
    and the phases printed; then nothing of the lab may be left, and no bridge or tap on this machine."""
    links_before = root_links()
    try:
        yield
    except BaseException:
        dump_logs(plan)
        raise
    finally:
        with phases("destroy"):
            kubelite("vm", "down", "--name", plan.name, timeout=timeout, check=False)
        with phases.capsys.disabled():
            print(f"\n{label} phases (s): {json.dumps(phases.seconds)}", flush=True)
    assert not lab_leftovers(plan), lab_leftovers(plan)
    assert not {link for link in root_links() - links_before if link.startswith(("virbr", "vnet"))}
