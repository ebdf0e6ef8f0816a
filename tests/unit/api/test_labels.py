"""Label selectors (string form and LabelSelector messages) and field selectors."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from api import labels
from api.errors import InvalidError
from api.labels import Requirement, Selector
from api.pb import core_pb2, meta_pb2

R = Requirement


@pytest.mark.parametrize(("text", "requirements"), [
    pytest.param("", (), id="empty-selects-everything"),
    pytest.param("app=web", (R("app", "=", ("web",)),), id="equals"),
    pytest.param("app==web", (R("app", "=", ("web",)),), id="double-equals"),
    pytest.param("app!=web", (R("app", "!=", ("web",)),), id="not-equals"),
    pytest.param("app", (R("app", "exists"),), id="exists"),
    pytest.param("!canary", (R("canary", "!"),), id="does-not-exist"),
    pytest.param("tier in (a,b)", (R("tier", "in", ("a", "b")),), id="in"),
    pytest.param("tier notin (a, b)", (R("tier", "notin", ("a", "b")),), id="notin-with-spaces"),
    pytest.param("app=web,tier in (a,b),!canary",
                 (R("app", "=", ("web",)), R("tier", "in", ("a", "b")), R("canary", "!")), id="issue-example"),
    pytest.param(" a = b , c ", (R("a", "=", ("b",)), R("c", "exists")), id="whitespace"),
    pytest.param("a=", (R("a", "=", ("",)),), id="empty-value"),
    pytest.param("example.com/app=web", (R("example.com/app", "=", ("web",)),), id="prefixed-key"),
    pytest.param("x in (foo,,baz),y,z notin ()",
                 (R("x", "in", ("foo", "", "baz")), R("y", "exists"), R("z", "notin", ("",))),
                 id="kubernetes-doc-example-empty-values"),
    pytest.param("a in (b,b)", (R("a", "in", ("b",)),), id="duplicate-values-collapse"),
    pytest.param("replicas>2", (R("replicas", "gt", ("2",)),), id="greater-than"),
    pytest.param("replicas<-1", (R("replicas", "lt", ("-1",)),), id="less-than-negative"),
])
def test_parse(text: str, requirements: tuple[Requirement, ...]) -> None:
    """Each selector form parses into the requirements Kubernetes means by it."""
    assert labels.parse(text).requirements == requirements


@pytest.mark.parametrize(("text", "problem"), [
    pytest.param(",", "expected a label key", id="lone-comma"),
    pytest.param("a,", "expected a label key after ','", id="trailing-comma"),
    pytest.param(",a", "expected a label key", id="leading-comma"),
    pytest.param("a in b", "expected '(' after in", id="in-without-parens"),
    pytest.param("a in (b", "expected ')'", id="unclosed-set"),
    pytest.param("a in (b c)", "expected ',' or ')' before 'c'", id="set-missing-comma"),
    pytest.param("a in (b=c)", "expected ',' or ')' before '='", id="operator-inside-set"),
    pytest.param("!", "expected a label key", id="bang-alone"),
    pytest.param("a b", "unexpected 'b' after 'a'", id="two-words"),
    pytest.param("a=b=c", "expected ',' before '='", id="two-equals"),
    pytest.param("x>y", "x> needs an integer", id="gt-non-integer"),
    pytest.param("-a=b", "key '-a'", id="bad-key"),
    pytest.param("a=_b", "value '_b'", id="bad-value"),
    pytest.param("a in (ok,-bad)", "value '-bad'", id="bad-value-in-set"),
    pytest.param("a=" + "v" * 64, "at most 63 characters", id="value-too-long"),
])
def test_parse_errors_name_the_problem(text: str, problem: str) -> None:
    """A malformed selector is refused with a message naming what is wrong."""
    with pytest.raises(InvalidError) as err:
        labels.parse(text)
    assert err.value.message.startswith("labelSelector: Invalid value: ")
    assert problem in err.value.message


@pytest.mark.parametrize(("text", "labels_", "match"), [
    pytest.param("app=web", {"app": "web"}, True, id="equals-hit"),
    pytest.param("app=web", {"app": "db"}, False, id="equals-miss"),
    pytest.param("app=web", {}, False, id="equals-absent"),
    pytest.param("app!=web", {}, True, id="not-equals-absent-matches"),
    pytest.param("app!=web", {"app": "web"}, False, id="not-equals-miss"),
    pytest.param("app", {"app": ""}, True, id="exists-empty-value"),
    pytest.param("!canary", {"canary": "true"}, False, id="does-not-exist-miss"),
    pytest.param("tier in (a,b)", {"tier": "b"}, True, id="in-hit"),
    pytest.param("tier in (a,b)", {}, False, id="in-absent"),
    pytest.param("tier notin (a,b)", {}, True, id="notin-absent-matches"),
    pytest.param("tier notin (a,b)", {"tier": "a"}, False, id="notin-miss"),
    pytest.param("x in (foo,,baz)", {"x": ""}, True, id="in-empty-value"),
    pytest.param("z notin ()", {"z": ""}, False, id="notin-empty-value"),
    pytest.param("z notin ()", {"z": "q"}, True, id="notin-empty-value-other"),
    pytest.param("app=web,tier in (a,b),!canary", {"app": "web", "tier": "a"}, True, id="conjunction-hit"),
    pytest.param("app=web,tier in (a,b),!canary", {"app": "web", "tier": "a", "canary": "1"}, False,
                 id="conjunction-miss"),
    pytest.param("replicas>2", {"replicas": "3"}, True, id="gt-hit"),
    pytest.param("replicas>2", {"replicas": "two"}, False, id="gt-not-a-number"),
    pytest.param("replicas<2", {}, False, id="lt-absent"),
])
def test_matches(text: str, labels_: dict[str, str], match: bool) -> None:
    """A parsed selector matches label sets exactly as Kubernetes' does."""
    assert labels.parse(text).matches(labels_) is match


def test_everything_and_nothing() -> None:
    """EVERYTHING matches any labels and NOTHING matches none."""
    assert labels.EVERYTHING.matches({}) and labels.EVERYTHING.empty
    assert not labels.NOTHING.matches({}) and not labels.NOTHING.empty


@pytest.mark.parametrize(("selector", "labels_", "match"), [
    pytest.param(None, {"a": "b"}, False, id="unset-matches-nothing"),
    pytest.param(meta_pb2.LabelSelector(), {"a": "b"}, True, id="empty-matches-everything"),
    pytest.param(meta_pb2.LabelSelector(match_labels={"app": "web"}), {"app": "web", "x": "y"}, True,
                 id="match-labels"),
    pytest.param(meta_pb2.LabelSelector(match_expressions=[
        meta_pb2.LabelSelectorRequirement(key="tier", operator="In", values=["a", "b"]),
        meta_pb2.LabelSelectorRequirement(key="canary", operator="DoesNotExist"),
    ]), {"tier": "a"}, True, id="expressions-hit"),
    pytest.param(meta_pb2.LabelSelector(match_expressions=[
        meta_pb2.LabelSelectorRequirement(key="tier", operator="NotIn", values=["a"]),
        meta_pb2.LabelSelectorRequirement(key="app", operator="Exists"),
    ]), {"tier": "a", "app": "x"}, False, id="expressions-miss"),
    pytest.param(meta_pb2.LabelSelector(match_expressions=[
        meta_pb2.LabelSelectorRequirement(key="tier", operator="Like", values=["a"]),
    ]), {"tier": "a"}, False, id="unknown-operator-matches-nothing"),
])
def test_from_label_selector(selector: meta_pb2.LabelSelector | None, labels_: dict[str, str], match: bool) -> None:
    """LabelSelector messages convert to the same requirements the string form has."""
    assert labels.from_label_selector(selector).matches(labels_) is match


@pytest.mark.parametrize(("selector", "labels_", "match"), [
    pytest.param({}, {"a": "b"}, False, id="empty-map-selects-nothing"),
    pytest.param({"app": "web"}, {"app": "web", "x": "y"}, True, id="subset-hit"),
    pytest.param({"app": "web", "tier": "a"}, {"app": "web"}, False, id="missing-key"),
])
def test_from_map(selector: dict[str, str], labels_: dict[str, str], match: bool) -> None:
    """A Service's map selector selects pods carrying every pair; an empty one selects none."""
    assert labels.from_map(selector).matches(labels_) is match


@pytest.mark.parametrize(("selector", "errors"), [
    pytest.param(meta_pb2.LabelSelector(match_labels={"app": "web"}), [], id="valid"),
    pytest.param(meta_pb2.LabelSelector(match_labels={"-bad": "web"}), ["spec.selector.matchLabels: Invalid value: "
                                                                         "'-bad'"], id="bad-key"),
    pytest.param(meta_pb2.LabelSelector(match_expressions=[
        meta_pb2.LabelSelectorRequirement(key="a", operator="Like")]),
        ["spec.selector.matchExpressions[0].operator: Unsupported value: 'Like'"], id="bad-operator"),
    pytest.param(meta_pb2.LabelSelector(match_expressions=[
        meta_pb2.LabelSelectorRequirement(key="a", operator="In")]),
        ["spec.selector.matchExpressions[0].values: Required value"], id="in-without-values"),
    pytest.param(meta_pb2.LabelSelector(match_expressions=[
        meta_pb2.LabelSelectorRequirement(key="a", operator="Exists", values=["x"])]),
        ["spec.selector.matchExpressions[0].values: Forbidden"], id="exists-with-values"),
])
def test_label_selector_errors(selector: meta_pb2.LabelSelector, errors: list[str]) -> None:
    """A LabelSelector message's problems are reported under the path given."""
    found = [str(e) for e in labels.label_selector_errors(selector, "spec.selector")]
    assert len(found) == len(errors)
    for got, want in zip(found, errors, strict=True):
        assert got.startswith(want)


# ---------------------------------------------------------------- round trip

_NAME = st.from_regex(r"\A[a-z0-9]([a-z0-9._-]{0,10}[a-z0-9])?\Z")
_KEY = st.one_of(_NAME, st.builds(lambda p, n: f"{p}/{n}", st.from_regex(r"\A[a-z]{1,8}(\.[a-z]{1,5})?\Z"), _NAME))
_VALUE = st.one_of(st.just(""), _NAME)


@st.composite
def _requirement(draw: st.DrawFn) -> Requirement:
    key = draw(_KEY)
    op = draw(st.sampled_from(["=", "!=", "in", "notin", "exists", "!", "gt", "lt"]))
    if op in ("=", "!="):
        return R(key, op, (draw(_VALUE),))
    if op in ("in", "notin"):
        return R(key, op, tuple(dict.fromkeys(draw(st.lists(_VALUE, min_size=1, max_size=4)))))
    if op in ("gt", "lt"):
        return R(key, op, (str(draw(st.integers(-1000, 1000))),))
    return R(key, op)


@given(st.lists(_requirement(), max_size=5))
def test_selector_string_round_trips(reqs: list[Requirement]) -> None:
    """Printing any selector and parsing the text gives back the same requirements."""
    sel = Selector(tuple(reqs))
    assert labels.parse(str(sel)) == sel


@given(st.lists(_requirement(), max_size=4), st.dictionaries(_KEY, _VALUE, max_size=4))
def test_printed_selector_matches_the_same(reqs: list[Requirement], labels_: dict[str, str]) -> None:
    """A selector and its printed-then-parsed form agree on every label set."""
    sel = Selector(tuple(reqs))
    assert labels.parse(str(sel)).matches(labels_) == sel.matches(labels_)


@given(st.dictionaries(_KEY, _NAME, min_size=1, max_size=4), st.dictionaries(_KEY, _NAME, max_size=4))
def test_map_selector_agrees_with_its_string(match: dict[str, str], labels_: dict[str, str]) -> None:
    """A map selector and its `k=v,...` string select exactly the same label sets."""
    text = ",".join(f"{k}={v}" for k, v in match.items())
    assert labels.from_map(match).matches(labels_) == labels.parse(text).matches(labels_)


# ---------------------------------------------------------------- field selectors


def _pod(name: str = "p", node: str = "", phase: str = "") -> core_pb2.Pod:
    return core_pb2.Pod(metadata={"name": name, "namespace": "default"}, spec={"node_name": node},
                        status={"phase": phase})


@pytest.mark.parametrize(("text", "obj", "match"), [
    pytest.param("metadata.name=p", _pod("p"), True, id="name-hit"),
    pytest.param("metadata.name==p", _pod("q"), False, id="name-double-equals-miss"),
    pytest.param("spec.nodeName=", _pod(node=""), True, id="unbound"),
    pytest.param("spec.nodeName!=", _pod(node="n1"), True, id="bound"),
    pytest.param("spec.nodeName=n1,status.phase=Running", _pod(node="n1", phase="Running"), True, id="two-fields"),
    pytest.param("spec.nodeName=n1,status.phase!=Running", _pod(node="n1", phase="Running"), False,
                 id="two-fields-miss"),
    pytest.param("metadata.namespace=default", _pod(), True, id="namespace"),
])
def test_field_selectors(text: str, obj: core_pb2.Pod, match: bool) -> None:
    """Field selectors compare the supported fields of an object."""
    reqs = labels.parse_fields(text, labels.supported_fields("Pod"))
    assert labels.fields_match(reqs, labels.field_values(obj)) is match


@pytest.mark.parametrize(("kind", "text", "problem"), [
    pytest.param("Pod", "spec.hostname=x", "field label not supported: spec.hostname", id="unsupported-field"),
    pytest.param("Service", "spec.nodeName=x", "field label not supported: spec.nodeName", id="pod-field-on-service"),
    pytest.param("Pod", "nonsense", "expected field=value", id="no-operator"),
])
def test_field_selector_errors(kind: str, text: str, problem: str) -> None:
    """An unsupported or malformed field selector is refused naming the field and the supported ones."""
    with pytest.raises(InvalidError) as err:
        labels.parse_fields(text, labels.supported_fields(kind))
    assert err.value.message.startswith("fieldSelector: Invalid value: ")
    assert problem in err.value.message


@pytest.mark.parametrize(("key", "ok"), [
    pytest.param("app", True, id="plain"),
    pytest.param("app.kubernetes.io/name", True, id="prefixed"),
    pytest.param("a" * 63, True, id="63-chars"),
    pytest.param("a" * 64, False, id="64-chars"),
    pytest.param("Example.com/x", False, id="uppercase-prefix"),
    pytest.param("/x", False, id="empty-prefix"),
    pytest.param("x/", False, id="empty-name"),
    pytest.param("-x", False, id="leading-dash"),
])
def test_key_errors(key: str, ok: bool) -> None:
    """Label keys follow Kubernetes' qualified-name rules."""
    assert (labels.key_errors(key) == []) is ok
