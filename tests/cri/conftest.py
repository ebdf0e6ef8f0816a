"""Fixtures for tests against real containerd, runc and CNI (root)."""

from __future__ import annotations

from pathlib import Path

import pytest

from deploy.node import images


@pytest.fixture(scope="session")
def image_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Our images, built once per session."""
    cache = tmp_path_factory.mktemp("images")
    images.build_all(cache)
    return cache
