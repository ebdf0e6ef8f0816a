"""Files built to exhaust the CLI (alias bombs, deep nesting) are refused at once, in one line, writing nothing."""

from __future__ import annotations

import time
from pathlib import Path

from client.api import Client

from .conftest import Kubelite

LAUGHS = """apiVersion: v1
kind: Pod
metadata:
  name: lol
  labels:
    a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
    b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
    c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
    d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
    e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
    f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
    g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
    h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
    i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
spec:
  containers:
  - name: c
    image: localhost:5000/kubelite/busybox:1.35
"""


async def test_billion_laughs_is_refused_in_one_line(kubelite: Kubelite, client: Client, tmp_path: Path) -> None:
    """The alias bomb is refused with one line naming the file, exit 1, and nothing written; the time is the
    command's start-up, not the file's."""
    path = tmp_path / "laughs.yaml"
    path.write_text(LAUGHS)
    before = (await client.list("pods", "default")).items
    start = time.monotonic()
    result = await kubelite("apply", "-f", str(path))
    elapsed = time.monotonic() - start
    assert result.code == 1
    assert result.err_lines == [f"error: {path} (document 1): line 11: YAML aliases expand to more than 100000 nodes"]
    assert result.out == ""
    assert (await client.list("pods", "default")).items == before
    assert elapsed < 5, elapsed  # a loaded shared machine; alone it takes about half a second
