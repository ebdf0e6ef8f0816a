"""apply's loading of a large file in several processes: the same objects, problems and document numbers as one
process gives, and cuts only between whole documents."""

from __future__ import annotations

import itertools
import os
import re

import pytest

from api import convert
from api.errors import InvalidError
from cli import apply

POD = """---
apiVersion: v1
kind: Pod
metadata: {{name: {name}, labels: {{app: web, n: "{i}"}}}}
spec:
  containers: [{{name: c, image: "busybox:1.35", command: [sh, -c, "echo one\\n--- not a marker"]}}]
"""
LIST = """---
apiVersion: v1
kind: List
items:
- {{apiVersion: v1, kind: ConfigMap, metadata: {{name: list-{i}-a}}, data: {{note: "|\\n---\\n"}}}}
- {{apiVersion: v1, kind: ConfigMap, metadata: {{name: list-{i}-b}}}}
"""


def big_file(count: int, *, bad: dict[int, str] | None = None) -> str:
    """`count` documents (every 50th a List of two, every 97th empty); `bad` replaces documents by number."""
    docs = []
    for i in range(1, count + 1):
        if bad and i in bad:
            docs.append(bad[i])
        elif i % 97 == 0:
            docs.append("---\n# nothing here\n")
        else:
            docs.append((LIST if i % 50 == 0 else POD).format(name=f"web-{i}", i=i))
    return "".join(docs)


@pytest.fixture
def parallel(monkeypatch: pytest.MonkeyPatch) -> None:
    """Several processes even on a one-CPU machine, and forking although the test runner has threads."""
    monkeypatch.setattr(os, "cpu_count", lambda: 3)
    monkeypatch.setattr(apply.threading, "active_count", lambda: 1)


def serial(text: str) -> tuple[list, list[str], int]:
    docs = list(convert.load_documents(text, "f.yaml"))
    parsed, problems = apply.parse_all(docs, "")
    return parsed, problems, len(docs)


def test_many_documents_parse_as_in_one_process(parallel: None) -> None:
    bad = {1101: POD.format(name="Not_A_Name", i=1101)}
    text = big_file(1200, bad=bad)
    assert len(convert.cut_documents(text, 3)) == 3
    parsed, problems, count = apply.load_and_parse([("f.yaml", text)], "")
    want_parsed, want_problems, want_count = serial(text)
    assert count == want_count == 1200 - 1200 // 97 + 1200 // 50
    assert [(d.where, d.data) for d, _ in parsed] == [(d.where, d.data) for d, _ in want_parsed]
    assert [e for _, e in parsed] == [e for _, e in want_parsed]
    assert problems == want_problems
    assert len(problems) == 1 and problems[0].startswith('f.yaml (document 1101): Pod "Not_A_Name" is invalid')


def test_an_error_in_a_later_run_names_its_document(parallel: None) -> None:
    """An undefined alias passes the syntax check and fails in the loader, here in a worker process."""
    text = big_file(1200, bad={1150: "---\nkind: Pod\nmetadata: *nowhere\n"})
    with pytest.raises(InvalidError, match=r"^f\.yaml \(document 1150\)"):
        apply.load_and_parse([("f.yaml", text)], "")


@pytest.mark.parametrize(("text", "parts", "starts"), [
    pytest.param("a: 1\n---\nb: 2\n---\nc: 3\n", 2, ["a", "---\nc"], id="explicit"),
    pytest.param("# head\na: 1\n---\nb: 2\n", 2, ["# head", "---\nb"], id="implicit-first"),
    pytest.param("a: 1\n---\nb: 2\n", 5, ["a"], id="fewer-documents-than-parts"),
    pytest.param("a: 1\n--- {b: 2}\n--- c\n", 3, ["a", "--- {", "--- c"], id="content-on-the-marker-line"),
    pytest.param('a: "1\n ---x"\nb: ---\n---\r\nc: 3\n', 2, ["a", "---\r"], id="only-markers-cut"),
])
def test_cut_documents(text: str, parts: int, starts: list[str]) -> None:
    runs = convert.cut_documents(text, parts)
    assert [run[:len(start)] for run, start in zip(runs, starts, strict=False)] == starts and len(runs) == len(starts)
    assert "".join(runs) == text
    loaded = [d.data for run in runs for d in convert.load_documents(run, "f")]
    assert loaded == [d.data for d in convert.load_documents(text, "f")]


PADDING = big_file(1000)


CM = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm}\n"


@pytest.mark.parametrize("middle", [
    pytest.param(f"---\n{CM}data:\n  note: |\n    one\n---\n{CM}", id="block-scalar-ended-by-a-marker"),
    pytest.param(f"---\n{CM}data:\n  note: one\n    two\n---\n{CM}", id="plain-scalar-ended-by-a-marker"),
    pytest.param(f"---\n{CM}data:\n  note: 'one\n---\n    two'\n", id="marker-in-a-quoted-scalar"),
    pytest.param(f"---\n{CM}data: {{note: [one,\n---\n  two]}}\n", id="marker-in-a-flow-sequence"),
    pytest.param(f"---\n{CM}...\n%TAG !e! tag:yaml.org,2002:\n---\n{CM}data: {{a: !e!str 1}}\n", id="tag-directive"),
    pytest.param(f"---\n{CM}...\n%YAML 1.1\n---\n{CM}", id="yaml-directive"),
])
def test_a_file_cut_anywhere_parses_as_in_one_process(parallel: None, middle: str) -> None:
    """Whatever stands at a cut, apply gives what one process gives: the same documents, numbers and problems,
    or the same error."""
    text = cut_inside(middle)
    try:
        want = serial(text)
    except InvalidError as e:
        with pytest.raises(InvalidError) as got:
            apply.load_and_parse([("f.yaml", text)], "")
        assert str(got.value) == str(e)
        return
    parsed, problems, count = apply.load_and_parse([("f.yaml", text)], "")
    assert [(d.where, d.data) for d, _ in parsed] == [(d.where, d.data) for d, _ in want[0]]
    assert (problems, count) == want[1:]


def cut_inside(middle: str) -> str:
    """PADDING with `middle` placed where a cut (into three runs) falls within it."""
    docs = re.split(r"(?m)^(?=---\n)", PADDING)
    for at in range(len(docs) // 3 - 5, len(docs) // 3 + 5):
        start = len("".join(docs[:at]))
        text = "".join(docs[:at]) + middle + "".join(docs[at:])
        bounds = list(itertools.accumulate(len(run) for run in convert.cut_documents(text, 3)))
        if any(start < b < start + len(middle) for b in bounds):
            return text
    raise AssertionError("no cut fell within the case")
