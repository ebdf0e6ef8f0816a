"""Every quantity suffix Kubernetes reads is accepted through `kubelite apply`, and kept as written."""

from __future__ import annotations

from pathlib import Path

import pytest

from client.api import Client

from .conftest import Kubelite

POD = """apiVersion: v1
kind: Pod
metadata:
  name: q
spec:
  containers:
  - name: c
    image: nginx:1.25
    resources:
      requests: {{cpu: "{cpu}", memory: "{memory}"}}
      limits: {{cpu: "{cpu_limit}"}}
"""


@pytest.mark.parametrize(("cpu", "memory", "cpu_limit"), [
    pytest.param("250000n", "64Mi", "1", id="nano"),
    pytest.param("500u", "1n", "1500m", id="micro-and-nano-memory"),
    pytest.param("1n", "1e6", "2e0", id="exponents"),
    pytest.param("0.5", "1.5Gi", "500000000n", id="fractions"),
])
async def test_apply_accepts_every_quantity_suffix(kubelite: Kubelite, client: Client, tmp_path: Path, cpu: str,
                                                   memory: str, cpu_limit: str) -> None:
    """A pod with n/u/m suffixes, exponents and fractions is created with its quantities as written."""
    path = tmp_path / "q.yaml"
    path.write_text(POD.format(cpu=cpu, memory=memory, cpu_limit=cpu_limit))
    result = await kubelite("apply", "-f", str(path))
    assert result.code == 0, result.err
    assert result.out.strip() == "pod/q created"
    got = await client.get("pods", "q", "default")
    assert dict(got.spec.containers[0].resources.requests) == {"cpu": cpu, "memory": memory}


async def test_apply_refuses_a_request_above_its_limit_in_other_units(kubelite: Kubelite, client: Client,
                                                                      tmp_path: Path) -> None:
    """Quantities in different suffixes compare by value: 2000000000n of cpu is above a 1500m limit."""
    path = tmp_path / "q.yaml"
    path.write_text(POD.format(cpu="2000000000n", memory="1Mi", cpu_limit="1500m"))
    result = await kubelite("apply", "-f", str(path))
    assert result.code == 1
    assert "spec.containers[0].resources.requests: Invalid value: '2000000000n': must be less than or equal to " \
           "cpu limit of 1500m" in result.err
    assert (await client.list("pods", "default")).items == []
