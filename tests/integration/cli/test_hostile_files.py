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


async def test_oversized_object_in_a_file_writes_nothing(kubelite: Kubelite, client: Client, tmp_path: Path) -> None:
    """A file with a small pod and a 2 MiB one: the big one is refused in one line naming its document, and the
    small one is not written either."""
    small = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: small\nspec:\n  containers:\n  - name: c\n    image: i\n"
    big = small.replace("small", "big") + "    args: [" + "x" * (2 * 1024 * 1024) + "]\n"
    path = tmp_path / "two.yaml"
    path.write_text(small + "---\n" + big)
    result = await kubelite("apply", "-f", str(path))
    assert result.code == 1
    problems = [line for line in result.err_lines if not line.endswith("nothing was applied")]
    assert len(problems) == 1, result.err
    assert problems[0].startswith(f'error: {path} (document 2): Pod "big"'), problems[0][:300]
    assert len(problems[0]) < 1000
    assert (await client.list("pods", "default")).items == []
