"""The lab registry: image names as containerd asks for them, and the manifests and blobs it serves."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from deploy.node import images, registry


@pytest.mark.parametrize(("name", "want"), [
    pytest.param("nginx", ("docker.io", "library/nginx", "latest"), id="docker-hub-short"),
    pytest.param("redis:7", ("docker.io", "library/redis", "7"), id="tag"),
    pytest.param("registry.k8s.io/busybox", ("registry.k8s.io", "busybox", "latest"), id="other-registry"),
    pytest.param("localhost:5000/kubelite/pause:3.9", ("localhost:5000", "kubelite/pause", "3.9"), id="with-port"),
])
def test_names_split_as_containerd_resolves_them(name: str, want: tuple[str, str, str]) -> None:
    """A reference's registry, repository (library/ for Docker Hub) and tag."""
    assert registry.split_name(name) == want


def test_serves_the_stand_in_images_and_nothing_else(tmp_path: Path) -> None:
    """The manifest of `nginx` (as a docker.io mirror is asked for it) and its blobs are served with their
    digests; an image it does not have is MANIFEST_UNKNOWN."""
    images.build_stand_ins(tmp_path)
    server = registry.serve(tmp_path, "127.0.0.1", 0)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with urllib.request.urlopen(f"{base}/v2/library/nginx/manifests/latest?ns=docker.io") as r:
            manifest = json.loads(r.read())
            digest = r.headers["Docker-Content-Digest"]
        assert digest.startswith("sha256:") and manifest["schemaVersion"] == 2
        layer = manifest["layers"][0]["digest"]
        with urllib.request.urlopen(f"{base}/v2/library/nginx/blobs/{layer}?ns=docker.io") as r:
            assert len(r.read()) == manifest["layers"][0]["size"]
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"{base}/v2/library/postgres/manifests/latest?ns=docker.io")
        assert err.value.code == 404
    finally:
        server.shutdown()
