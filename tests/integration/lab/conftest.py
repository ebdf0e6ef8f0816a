"""Fixtures for lab tests (root): clusters with unique names, always torn down."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from deploy.lab import (
    LabPlan,
    Supervisor,
    all_lab_namespaces,
    apply_topology,
    destroy_topology,
    plan_lab,
)
from deploy.lab.procs import cgroup_dirs

MakeLab = Callable[..., LabPlan]


def unused_cluster_name() -> str:
    """A `kltest....` name no namespace or cgroup on this machine uses (another run may be going)."""
    taken = all_lab_namespaces()
    while True:
        name = f"kltest{secrets.token_hex(2)}"
        if name not in taken and not cgroup_dirs(f"kubelite/{name}"):
            return name


def teardown(plan: LabPlan) -> None:
    try:
        Supervisor.for_plan(plan).stop_all(timeout=2.0)
    finally:
        destroy_topology(plan.cluster)


@pytest.fixture
def make_lab(tmp_path: Path) -> Iterator[MakeLab]:
    """Build lab topologies; every cluster made (or named) is torn down even if the test fails."""
    made: list[LabPlan] = []

    def make(nodes: int = 3, *, cluster: str | None = None, apply: bool = True, control_planes: int = 1) -> LabPlan:
        plan = plan_lab(
            cluster or unused_cluster_name(),
            nodes,
            control_planes=control_planes,
            run_root=tmp_path / "run",
            data_root=tmp_path / "data",
        )
        made.append(plan)
        if apply:
            apply_topology(plan)
        return plan

    yield make
    errors = []
    for plan in made:
        try:
            teardown(plan)
        except Exception as exc:  # keep tearing down the others, then fail
            errors.append(exc)
    if errors:
        raise errors[0]


@pytest.fixture
def lab(make_lab: MakeLab) -> LabPlan:
    """A 3-node lab."""
    return make_lab(3)
