"""Our OCI image layouts: deterministic layers, valid digests, names containerd imports."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest

from deploy.node import images
from deploy.node.images import Entry, ImageConfig, ImageError


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_layer_tar_is_deterministic_and_adds_parents() -> None:
    """A layer lists parents before children, owned by root with a fixed mtime,
    and the same entries in any order give the same bytes."""
    entries = [Entry("/a/b/file", data=b"x", mode=0o755), Entry("/a/link", "symlink", 0o777, target="b/file")]
    raw = images.layer_tar(entries)
    assert raw == images.layer_tar(list(reversed(entries)))
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == ["a", "a/b", "a/b/file", "a/link"]
    assert {(m.uid, m.gid, m.mtime) for m in members} == {(0, 0, images.EPOCH)}
    assert members[2].mode == 0o755 and members[3].linkname == "b/file"


def test_layout_digests_and_name() -> None:
    """Every blob is stored under its digest, the manifest points at the config and
    gzip layer, the config's diff_id is the uncompressed layer, and index.json names the image."""
    files = images.build_layout("localhost:5000/x/y:1.0", [Entry("/hello", data=b"hi")],
                                ImageConfig(cmd=("sh",)), arch="amd64")
    assert json.loads(files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    for name, blob in files.items():
        if name.startswith("blobs/"):
            assert name == "blobs/sha256/" + hashlib.sha256(blob).hexdigest()
    index = json.loads(files["index.json"])
    entry = index["manifests"][0]
    assert entry["annotations"] == {"io.containerd.image.name": "localhost:5000/x/y:1.0",
                                    "org.opencontainers.image.ref.name": "1.0"}
    manifest = json.loads(files["blobs/sha256/" + entry["digest"][7:]])
    config = json.loads(files["blobs/sha256/" + manifest["config"]["digest"][7:]])
    layer = files["blobs/sha256/" + manifest["layers"][0]["digest"][7:]]
    assert manifest["layers"][0]["mediaType"] == images.MEDIA_LAYER
    assert config["rootfs"]["diff_ids"] == [_digest(gzip.decompress(layer))]
    assert (config["architecture"], config["config"]["Cmd"], config["config"]["Entrypoint"]) == ("amd64", ["sh"], None)


def test_layout_is_reproducible() -> None:
    """Building the same image twice gives identical bytes (gzip carries no timestamp)."""
    def build() -> dict[str, bytes]:
        return images.build_layout("n:1", [Entry("/f", data=b"data" * 1000)], ImageConfig(), arch="amd64")

    assert build() == build()


def test_busybox_entries_need_required_applets() -> None:
    """A busybox without an applet the tests rely on is refused, naming what is missing."""
    with pytest.raises(ImageError, match="httpd"):
        images.busybox_entries(b"", ["sh", "sleep"])


def test_busybox_root_has_users_and_web_root() -> None:
    """The busybox image has applet links, root and nobody, and a page for httpd to serve."""
    applets = [*images.REQUIRED_APPLETS, "busybox"]
    by_path = {e.path: e for e in images.busybox_entries(b"ELF", applets)}
    assert by_path["/bin/sh"].target == "busybox" and by_path["/bin/busybox"].kind == "file"
    assert by_path["/etc/passwd"].data.startswith(b"root:x:0:0:") and b"nobody:x:65534" in by_path["/etc/passwd"].data
    assert by_path["/www/index.html"].data == images.INDEX_HTML
    assert by_path["/tmp"].mode == 0o1777


def test_build_all_caches_and_reproduces(tmp_path: Path) -> None:
    """Building into a cache skips work when inputs are unchanged, and two caches hold identical tarballs."""
    first = images.build_all(tmp_path / "a")
    mtimes = {name: p.stat().st_mtime_ns for name, p in first.items()}
    again = images.build_all(tmp_path / "a")
    assert {name: p.stat().st_mtime_ns for name, p in again.items()} == mtimes
    other = images.build_all(tmp_path / "b")
    assert set(first) == {images.PAUSE_IMAGE, images.BUSYBOX_IMAGE, *images.STAND_INS}
    for name in first:
        assert first[name].read_bytes() == other[name].read_bytes()
    with tarfile.open(first[images.PAUSE_IMAGE]) as tar:
        assert sorted(tar.getnames())[-2:] == ["index.json", "oci-layout"]


def test_a_bundle_holds_every_image_by_name_with_shared_blobs_once(tmp_path: Path) -> None:
    """One tarball for one import: index.json names every image (their manifests as their own tarballs have
    them), each blob is stored once under its digest, and an unchanged set is not written again."""
    tarballs = images.build_all(tmp_path / "cache")
    out = images.bundle(tarballs, tmp_path / "bundle" / "images.tar")
    with tarfile.open(out) as tar:
        index = json.loads(tar.extractfile("index.json").read())  # type: ignore[union-attr]
        blobs = {m.name: tar.extractfile(m).read() for m in tar.getmembers()  # type: ignore[union-attr]
                 if m.isfile() and m.name.startswith("blobs/")}
    named = {m["annotations"]["io.containerd.image.name"]: m for m in index["manifests"]}
    assert set(named) == set(tarballs) and len(index["manifests"]) == len(tarballs)
    for name, path in tarballs.items():
        with tarfile.open(path) as tar:
            own = json.loads(tar.extractfile("index.json").read())["manifests"][0]  # type: ignore[union-attr]
            assert named[name] == own
            for m in tar.getmembers():
                if m.isfile() and m.name.startswith("blobs/"):
                    assert blobs[m.name] == tar.extractfile(m).read()  # type: ignore[union-attr]
    assert all(_digest(data) == "sha256:" + path.rsplit("/", 1)[1] for path, data in blobs.items())
    assert sum(p.stat().st_size for p in tarballs.values()) > 3 * out.stat().st_size  # shared layers once
    written = out.stat().st_mtime_ns
    assert images.bundle(tarballs, out).stat().st_mtime_ns == written
    fewer = {n: p for n, p in tarballs.items() if n != images.PAUSE_IMAGE}
    with tarfile.open(images.bundle(fewer, out)) as tar:
        index = json.loads(tar.extractfile("index.json").read())  # type: ignore[union-attr]
    assert images.PAUSE_IMAGE not in {m["annotations"]["io.containerd.image.name"] for m in index["manifests"]}


def test_image_id_is_the_config_digest(tmp_path: Path) -> None:
    """What CRI reports as an image's ID: the digest of the config blob its manifest names."""
    path = images.build_busybox(tmp_path)
    with tarfile.open(path) as tar:
        index = json.loads(tar.extractfile("index.json").read())  # type: ignore[union-attr]
        manifest = json.loads(tar.extractfile(  # type: ignore[union-attr]
            "blobs/sha256/" + index["manifests"][0]["digest"][7:]).read())
        config = tar.extractfile("blobs/sha256/" + manifest["config"]["digest"][7:]).read()  # type: ignore[union-attr]
    assert images.image_id(path) == _digest(config) == manifest["config"]["digest"]
