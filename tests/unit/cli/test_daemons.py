"""`kubelite proxy` and `kubelite dns` refuse bad flags with one clear line, before starting anything."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from cli.main import main


@pytest.mark.parametrize("args,code,message", [
    pytest.param(["proxy", "--server", "127.0.0.1:1"], 2, "--node-name is required", id="proxy-needs-node"),
    pytest.param(["proxy", "--node-name", "n1", "--cluster-cidr", "10.244.0.0/33"], 2, "--cluster-cidr",
                 id="proxy-bad-cidr"),
    pytest.param(["proxy", "--node-name", "n1", "--sync-period", "0"], 2, "must be positive", id="proxy-bad-period"),
    pytest.param(["dns", "--listen", "nowhere"], 2, "expected IP:PORT", id="dns-bad-listen"),
    pytest.param(["dns", "--listen", "0.0.0.0:53"], 1, "error: cannot publish '0.0.0.0' in Endpoints", id="dns-any"),
    pytest.param(["dns", "--listen", "127.0.0.1:53", "--publish", "kube-dns"], 2, "NAMESPACE/NAME",
                 id="dns-bad-publish"),
])
def test_bad_flags(args: list[str], code: int, message: str) -> None:
    """Each bad flag exits non-zero naming the problem."""
    result = CliRunner().invoke(main, args)
    assert result.exit_code == code, result.output
    assert message in result.output
