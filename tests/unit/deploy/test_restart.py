"""The restart policy the lab's watchdog and the VMs' systemd units share: Restart=on-failure with a back-off and
a start limit."""

from __future__ import annotations

from pathlib import Path

import pytest

from deploy.lab.restart import GiveUp, RestartPolicy, plan_restart, recent_starts
from deploy.node.launch import render_unit

POLICY = RestartPolicy(delay=0.5, burst=5, interval=10.0)


@pytest.mark.parametrize(("starts", "died_at", "expect"), [
    pytest.param((100.0,), 200.0, 200.5, id="long-running-restarts-after-delay"),
    pytest.param((), 50.0, 50.5, id="no-start-recorded"),
    pytest.param((100.0, 101.0, 102.0, 103.0), 104.0, 104.5, id="fifth-start-allowed"),
    pytest.param((100.0, 101.0, 102.0, 103.0, 104.0), 105.0, GiveUp("started 5 times within 10s"),
                 id="sixth-start-within-interval-gives-up"),
    pytest.param((90.0, 101.0, 102.0, 103.0, 104.0), 105.0, 105.5, id="old-starts-do-not-count"),
    pytest.param((95.4, 101.0, 102.0, 103.0, 104.0), 105.0, 105.5, id="start-just-out-of-the-window"),
])
def test_plan_restart(starts: tuple[float, ...], died_at: float, expect: float | GiveUp) -> None:
    """A dead daemon starts again `delay` after it was seen dead, unless that start would exceed the start limit."""
    assert plan_restart(starts, died_at, POLICY) == expect


def test_recent_starts_forget_the_old_and_add_now() -> None:
    """Only starts within the interval are remembered, plus the one being made."""
    assert recent_starts((1.0, 95.0, 99.0), 100.0, POLICY) == (95.0, 99.0, 100.0)


@pytest.mark.parametrize("template", ["kubelite-daemon.service", "kubelite-containerd.service"])
def test_units_use_the_same_policy(template: str, tmp_path: Path) -> None:
    """Every systemd unit restarts on failure with the policy's back-off and start limit, StartLimit* in [Unit]."""
    policy = RestartPolicy(delay=0.25, burst=3, interval=7.0)
    unit = render_unit("kubelet", ["kubelite", "kubelet"], log_file=tmp_path / "k.log", template=template,
                       policy=policy)
    unit_section, service_section = unit.split("[Service]")[0], unit.split("[Service]")[1].split("[Install]")[0]
    assert "StartLimitIntervalSec=7s" in unit_section.splitlines()
    assert "StartLimitBurst=3" in unit_section.splitlines()
    assert "Restart=on-failure" in service_section.splitlines()
    assert "RestartSec=250ms" in service_section.splitlines()
    assert "{" not in unit
