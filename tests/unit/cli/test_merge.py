"""apply's three-way merge: the file wins, fields the file stopped setting go, others' fields stay."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cli import merge

LAST = merge.LAST_APPLIED


@pytest.mark.parametrize(("live", "last", "new", "out"), [
    pytest.param({"a": 1}, {"a": 1}, {"a": 2}, {"a": 2}, id="file-changes-a-value"),
    pytest.param({"a": 1}, {"a": 1}, {"a": 1, "b": 2}, {"a": 1, "b": 2}, id="file-adds-a-field"),
    pytest.param({"a": 1, "b": 2}, {"a": 1, "b": 2}, {"a": 1}, {"a": 1}, id="file-drops-a-field"),
    pytest.param({"a": 1, "server": "x"}, {"a": 1}, {"a": 1}, {"a": 1, "server": "x"},
                 id="server-defaults-stay"),
    pytest.param({"a": 1, "other": "y"}, {"a": 1}, {"a": 3}, {"a": 3, "other": "y"},
                 id="other-writers-fields-stay"),
    pytest.param({"m": {"x": 1, "y": 2, "z": 3}}, {"m": {"x": 1, "y": 2}}, {"m": {"x": 5}},
                 {"m": {"x": 5, "z": 3}}, id="maps-merge-key-by-key"),
    pytest.param({"l": [1, 2, 3]}, {"l": [1, 2]}, {"l": [4]}, {"l": [4]}, id="lists-are-replaced"),
    pytest.param({"m": {"x": 1}}, {}, {"m": 7}, {"m": 7}, id="scalar-replaces-map"),
    pytest.param({"m": 7}, {}, {"m": {"x": 1}}, {"m": {"x": 1}}, id="map-replaces-scalar"),
    pytest.param({"a": {"b": {"c": 1, "d": 2}}}, {"a": {"b": {"c": 1, "d": 2}}}, {"a": {"b": {"c": 1}}},
                 {"a": {"b": {"c": 1}}}, id="nested-removal"),
    pytest.param({"a": 1}, {}, {}, {"a": 1}, id="empty-file-changes-nothing-unowned"),
])
def test_merge(live: dict[str, Any], last: dict[str, Any], new: dict[str, Any], out: dict[str, Any]) -> None:
    """The merge of live, last-applied and new is live + (new - last)."""
    before = copy.deepcopy((live, last, new))
    assert merge.merge(live, last, new) == out
    assert (live, last, new) == before, "merge must not change its inputs"


def test_with_last_applied_records_the_file() -> None:
    """The manifest sent carries the file's own content, compactly, in the last-applied annotation."""
    doc = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": []}}
    out = merge.with_last_applied(doc)
    record = json.loads(out["metadata"]["annotations"][LAST])
    assert record == doc
    assert "annotations" not in doc["metadata"], "the input document is not changed"
    assert " " not in out["metadata"]["annotations"][LAST]


def test_with_last_applied_does_not_nest_itself() -> None:
    """Re-applying output that already carries the annotation records the rest, not the old annotation."""
    doc = {"kind": "Pod", "metadata": {"name": "p", "annotations": {LAST: "{\"old\":1}", "team": "a"}}}
    record = json.loads(merge.with_last_applied(doc)["metadata"]["annotations"][LAST])
    assert record == {"kind": "Pod", "metadata": {"name": "p", "annotations": {"team": "a"}}}
    only = {"kind": "Pod", "metadata": {"name": "p", "annotations": {LAST: "{}"}}}
    record = json.loads(merge.with_last_applied(only)["metadata"]["annotations"][LAST])
    assert record == {"kind": "Pod", "metadata": {"name": "p"}}


@pytest.mark.parametrize(("annotation", "parsed"), [
    pytest.param(None, {}, id="absent"),
    pytest.param("{\"a\":1}", {"a": 1}, id="json-object"),
    pytest.param("not json", {}, id="garbage"),
    pytest.param("[1,2]", {}, id="not-an-object"),
])
def test_last_applied(annotation: str | None, parsed: dict[str, Any]) -> None:
    """The last-applied annotation is read back as a dict; anything unusable counts as nothing applied."""
    manifest: dict[str, Any] = {"metadata": {"annotations": {LAST: annotation} if annotation is not None else {}}}
    assert merge.last_applied(manifest) == parsed


_JSON = st.recursive(st.one_of(st.integers(-5, 5), st.text(max_size=3), st.booleans()),
                     lambda inner: st.one_of(st.lists(inner, max_size=3),
                                             st.dictionaries(st.sampled_from("abcd"), inner, max_size=3)),
                     max_leaves=12)
_DOC = st.dictionaries(st.sampled_from("abcdef"), _JSON, max_size=5)


@given(_DOC, _DOC)
def test_applying_a_file_twice_is_stable(live: dict[str, Any], new: dict[str, Any]) -> None:
    """Applying the same file again changes nothing: merge(merge(live, {}, new), new, new) == merge(live, {}, new)."""
    once = merge.merge(live, {}, new)
    assert merge.merge(once, new, new) == once


@given(_DOC, _DOC, _DOC)
def test_file_content_always_wins(live: dict[str, Any], last: dict[str, Any], new: dict[str, Any]) -> None:
    """Every top-level value the file sets is in the result (maps possibly with others' extra keys)."""
    out = merge.merge(live, last, new)
    for key, value in new.items():
        if isinstance(value, dict):
            assert isinstance(out[key], dict)
            assert all(k in out[key] for k in value)
        else:
            assert out[key] == value
    for key in last:
        if key not in new:
            assert key not in out


_META = st.one_of(st.none(), st.fixed_dictionaries({"name": st.just("p")}, optional={
    "annotations": st.one_of(st.none(), st.dictionaries(st.sampled_from([LAST, "team", "x"]), st.text(max_size=3),
                                                        max_size=3)),
    "labels": st.dictionaries(st.sampled_from("ab"), st.text(max_size=2), max_size=2)}))


@given(_DOC, _META)
def test_with_last_applied_records_the_file_less_its_own_annotation(rest: dict[str, Any], meta: Any) -> None:
    """Whatever the metadata holds (nothing, empty or null annotations, an older record): the manifest sent is
    the file plus one annotation, which records the file without that annotation; the file is left as it was."""
    doc = {**rest, "kind": "Pod"} if meta is None else {**rest, "kind": "Pod", "metadata": meta}
    before = copy.deepcopy(doc)
    out = merge.with_last_applied(doc)
    assert doc == before
    expected = copy.deepcopy(doc)
    annotations = (expected.get("metadata") or {}).get("annotations")
    if expected.get("metadata") is not None and "annotations" in expected["metadata"]:
        (annotations or {}).pop(LAST, None)
        if not annotations:
            del expected["metadata"]["annotations"]
    assert json.loads(out["metadata"]["annotations"][LAST]) == expected
    sent = copy.deepcopy(out)
    del sent["metadata"]["annotations"][LAST]
    assert sent == {**doc, "metadata": {**(doc.get("metadata") or {}),
                                        "annotations": {k: v for k, v in ((doc.get("metadata") or {}).get(
                                            "annotations") or {}).items() if k != LAST}}}
