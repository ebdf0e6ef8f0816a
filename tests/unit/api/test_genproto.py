"""The generated protobuf code is checked against the .proto files, and the checker catches staleness."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


def _check(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(root / "scripts" / "genproto.py"), "--check"], capture_output=True,
                          text=True, timeout=120, cwd=root)


def test_generated_code_is_current() -> None:
    """The repository's api/pb (and the CRI stubs) match what the .proto files generate."""
    result = _check(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture
def copy_of_repo(tmp_path: Path) -> Path:
    """The protos, the generator and the generated packages, copied to a scratch tree."""
    for rel in ("scripts/genproto.py", "proto", "api/pb", "kubelet/runtime/criapi", "apiserver/rest/kubernetes.desc"):
        src, dst = ROOT / rel, tmp_path / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dst)
    return tmp_path


def test_checker_passes_on_an_unchanged_copy(copy_of_repo: Path) -> None:
    """The checker, run on an untouched copy, finds nothing stale (so the next tests test the change)."""
    result = _check(copy_of_repo)
    assert result.returncode == 0, result.stdout + result.stderr


def test_checker_fails_when_a_proto_changes(copy_of_repo: Path) -> None:
    """Adding a field to a .proto without regenerating makes --check fail and name the stale files."""
    proto = copy_of_repo / "proto" / "kubelite" / "v1" / "meta.proto"
    text = proto.read_text()
    marker = "  string self_link = 15;\n"
    assert marker in text
    proto.write_text(text.replace(marker, marker + "  string stale_check_field = 99;\n"))
    result = _check(copy_of_repo)
    assert result.returncode == 1
    assert "stale generated code" in result.stdout
    assert "api/pb/meta_pb2.py" in result.stdout
    assert "api/pb/meta_pb2.pyi" in result.stdout
    assert "api/pb/core_pb2.py" not in result.stdout


def test_checker_fails_when_a_generated_file_is_missing(copy_of_repo: Path) -> None:
    """A deleted generated module counts as stale."""
    (copy_of_repo / "api" / "pb" / "apps_pb2.py").unlink()
    result = _check(copy_of_repo)
    assert result.returncode == 1
    assert "api/pb/apps_pb2.py" in result.stdout


def test_checker_fails_when_a_generated_file_is_edited(copy_of_repo: Path) -> None:
    """A hand edit to generated code counts as stale."""
    target = copy_of_repo / "api" / "pb" / "api_pb2_grpc.py"
    target.write_text(target.read_text() + "\n# edited by hand\n")
    result = _check(copy_of_repo)
    assert result.returncode == 1
    assert "api/pb/api_pb2_grpc.py" in result.stdout


def test_checker_fails_when_a_kubernetes_schema_changes(copy_of_repo: Path) -> None:
    """Kubernetes' schemas are compiled into one descriptor set: a change to them without regenerating is stale."""
    proto = copy_of_repo / "proto" / "k8s.io" / "api" / "core" / "v1" / "generated.proto"
    proto.write_text(proto.read_text().replace("message Secret {\n", "message Secret {\n  optional string x = 99;\n"))
    result = _check(copy_of_repo)
    assert result.returncode == 1
    assert "apiserver/rest/kubernetes.desc" in result.stdout
