"""bench/api.py's cost of TLS: creates/s and CPU per create with mutual TLS against plaintext, in one run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_tls_cost_prints_json_with_its_plaintext_baseline() -> None:
    """A small `bench/api.py --only tls` prints JSON with TLS and plaintext creates/s and CPU per create measured
    in the same run, and the cost figures the 15% target is checked against."""
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "api.py"), "--only", "tls", "--tls-creates", "400",
                             "--tls-rounds", "1", "--load-procs", "1", "--concurrency", "16"],
                            capture_output=True, text=True, timeout=240, cwd=ROOT, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout)
    tls = out["tls"]
    for mode in ("tls", "plaintext"):
        assert tls[mode]["creates_per_second"] > 0, tls
        assert tls[mode]["cpu_us_per_create"]["apiserver"] > 0, tls
        assert [run["creates"] for run in tls["runs"][mode]] == [400]
    assert tls["creates_per_second_cost"] == round(1 - tls["tls"]["creates_per_second"]
                                                   / tls["plaintext"]["creates_per_second"], 3)
    assert out["summary"]["tls_creates_per_second_cost"] == tls["creates_per_second_cost"]
    assert out["summary"]["tls_cost_ok"] == (tls["creates_per_second_cost"] < out["targets"]["tls_create_cost_max"])
