"""The atomic writer: a volume's files change at once through the ..data link."""

from __future__ import annotations

import os
from pathlib import Path

from kubelet import atomic


def test_files_are_links_through_data(tmp_path: Path) -> None:
    """Each visible name links into ..data, which points at one timestamped directory holding the files."""
    assert atomic.write(tmp_path, {"a": atomic.File(b"1"), "dir/b": atomic.File(b"2", 0o600)}) is True
    assert os.readlink(tmp_path / "a") == "..data/a"
    assert (tmp_path / "a").read_bytes() == b"1" and (tmp_path / "dir" / "b").read_bytes() == b"2"
    assert os.readlink(tmp_path / "..data").startswith("..20")
    assert (tmp_path / "dir" / "b").stat().st_mode & 0o777 == 0o600


def test_an_update_swaps_everything_and_drops_removed_keys(tmp_path: Path) -> None:
    """A second write replaces the data directory, removes the old one and the links of keys that went."""
    atomic.write(tmp_path, {"a": atomic.File(b"1"), "b": atomic.File(b"2")})
    old = os.readlink(tmp_path / "..data")
    assert atomic.write(tmp_path, {"a": atomic.File(b"new")}) is True
    assert (tmp_path / "a").read_bytes() == b"new"
    assert not (tmp_path / "b").exists() and not (tmp_path / "b").is_symlink()
    assert not (tmp_path / old).exists()
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("..20")) == ["..data", "a"]


def test_an_unchanged_write_touches_nothing(tmp_path: Path) -> None:
    """Writing the same files again keeps the same data directory."""
    atomic.write(tmp_path, {"a": atomic.File(b"1")})
    first = os.readlink(tmp_path / "..data")
    assert atomic.write(tmp_path, {"a": atomic.File(b"1")}) is False
    assert os.readlink(tmp_path / "..data") == first


def test_a_file_opened_before_an_update_keeps_its_content(tmp_path: Path) -> None:
    """The resolved path of a file (what a subPath mount binds) keeps the old content after an update."""
    atomic.write(tmp_path, {"a": atomic.File(b"old")})
    resolved = Path(os.path.realpath(tmp_path / "a"))
    with open(resolved, "rb") as f:
        atomic.write(tmp_path, {"a": atomic.File(b"new")})
        assert f.read() == b"old"
    assert (tmp_path / "a").read_bytes() == b"new"


def test_what_reads_back_is_what_was_written(tmp_path: Path) -> None:
    """read_current gives back the files and modes of the last write, nested ones included; None before any."""
    assert atomic.read_current(tmp_path / "never") is None
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "..data").write_bytes(b"not a link")
    assert atomic.read_current(tmp_path / "plain") is None
    files = {"a": atomic.File(b"1", 0o600), "d/e/f": atomic.File(b"x" * 70000, 0o644), "d/g": atomic.File(b"")}
    atomic.write(tmp_path / "v", files)
    assert atomic.read_current(tmp_path / "v") == files
    assert sorted(os.listdir(tmp_path / "v" / "d")) == ["e", "g"]


def test_a_file_or_directory_in_the_way_of_a_name_gives_way_to_its_link(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"left over")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "inner").write_bytes(b"left over")
    assert atomic.write(tmp_path, {"a": atomic.File(b"1"), "b/c": atomic.File(b"2")})
    assert os.readlink(tmp_path / "a") == "..data/a" and os.readlink(tmp_path / "b") == "..data/b"
    assert (tmp_path / "a").read_bytes() == b"1" and (tmp_path / "b" / "c").read_bytes() == b"2"
    assert not (tmp_path / "b" / "inner").exists()
