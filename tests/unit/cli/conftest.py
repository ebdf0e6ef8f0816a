"""`kubelite --server/--token-file/--cluster` export themselves to the environment for the verb that follows
(cli/main.py); a CliRunner call runs in this process, so each test gets the environment back as it found it."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _environment_restored() -> Iterator[None]:
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)
