"""Kubernetes YAML/JSON <-> protobuf: values as Kubernetes spells them, errors that name the field."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from api import convert, kinds
from api.errors import InvalidError, UnsupportedError
from api.pb import apps_pb2, core_pb2

DOCS = Path(__file__).resolve().parents[2] / "data" / "k8s-docs"


def _dict(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    return convert.to_dict(convert.from_dict(cls, data))


@pytest.mark.parametrize(("value", "stored", "shown"), [
    pytest.param(9376, "9376", 9376, id="yaml-int"),
    pytest.param("9376", "9376", 9376, id="numeric-string-prints-as-int"),
    pytest.param("http", "http", "http", id="port-name"),
])
def test_int_or_string(value: Any, stored: str, shown: Any) -> None:
    """An IntOrString accepts a number or a name and prints numbers back as YAML integers."""
    port = convert.from_dict(core_pb2.ServicePort, {"port": 80, "targetPort": value})
    assert port.target_port == stored
    assert convert.to_dict(port)["targetPort"] == shown


def test_int_or_string_percent() -> None:
    """Percentages (maxSurge: 25%) and plain counts (maxUnavailable: 0) both survive the round trip."""
    data = {"maxSurge": "25%", "maxUnavailable": 0}
    assert _dict(apps_pb2.RollingUpdateDeployment, data) == data


@pytest.mark.parametrize(("value", "stored"), [
    pytest.param("250m", "250m", id="string"),
    pytest.param(2, "2", id="yaml-int"),
    pytest.param(0.5, "0.5", id="yaml-float"),
    pytest.param(2.0, "2", id="yaml-float-whole"),
    pytest.param(1e-07, "1e-07", id="yaml-float-exponent"),
])
def test_quantities_from_yaml_numbers(value: Any, stored: str) -> None:
    """Quantities written as YAML numbers are stored as the quantity string they stand for."""
    res = convert.from_dict(core_pb2.ResourceRequirements, {"limits": {"cpu": value}})
    assert res.limits["cpu"] == stored


@pytest.mark.parametrize(("value", "shown"), [
    pytest.param("2024-01-02T03:04:05Z", "2024-01-02T03:04:05Z", id="utc"),
    pytest.param("2024-01-02T03:04:05.5Z", "2024-01-02T03:04:05.500000Z", id="fraction"),
    pytest.param("2024-01-02T03:04:05+02:00", "2024-01-02T01:04:05Z", id="offset-normalised-to-utc"),
    pytest.param(dt.datetime(2024, 1, 2, 3, 4, 5), "2024-01-02T03:04:05Z", id="yaml-datetime-naive-is-utc"),
])
def test_timestamps(value: Any, shown: str) -> None:
    """RFC 3339 times parse and print in UTC as Kubernetes prints them."""
    assert _dict(core_pb2.ContainerStateRunning, {"startedAt": value}) == {"startedAt": shown}


@pytest.mark.parametrize("value", [
    pytest.param("2024-01-02T03:04:05", id="no-zone"),
    pytest.param("yesterday", id="words"),
    pytest.param(12, id="number"),
])
def test_bad_timestamps(value: Any) -> None:
    """A time that is not RFC 3339 is refused naming the field."""
    with pytest.raises(InvalidError) as err:
        convert.from_dict(core_pb2.ContainerStateRunning, {"startedAt": value})
    assert err.value.message == f"startedAt: Invalid value: {value!r}: expected an RFC 3339 time"


@pytest.mark.parametrize(("cls", "data", "message"), [
    pytest.param(core_pb2.ServicePort, {"port": "80"}, "port: Invalid value: '80': expected integer, got string",
                 id="string-for-int"),
    pytest.param(core_pb2.ServicePort, {"port": 80.0}, "port: Invalid value: 80.0: expected integer, got number",
                 id="float-for-int"),
    pytest.param(core_pb2.ServicePort, {"port": 2**31}, "port: Invalid value: 2147483648: out of range",
                 id="int32-overflow"),
    pytest.param(core_pb2.ServicePort, {"targetPort": True},
                 "targetPort: Invalid value: True: expected string, got boolean", id="bool-for-int-or-string"),
    pytest.param(core_pb2.Container, {"stdin": "yes"}, "stdin: Invalid value: 'yes': expected boolean, got string",
                 id="string-for-bool"),
    pytest.param(core_pb2.Container, {"name": ["x"]}, "name: Invalid value: ['x']: expected string, got array",
                 id="array-for-string"),
    pytest.param(core_pb2.Container, {"ports": {"a": 1}}, "ports: Invalid value: expected array, got object",
                 id="object-for-array"),
    pytest.param(core_pb2.Container, {"ports": [None]}, "ports[0]: Invalid value: expected object, got null",
                 id="null-list-item"),
    pytest.param(core_pb2.Container, {"command": ["sh", 1]},
                 "command[1]: Invalid value: 1: expected string, got number", id="bad-list-item"),
    pytest.param(core_pb2.ResourceRequirements, {"limits": ["1"]},
                 "limits: Invalid value: expected object, got array", id="array-for-map"),
    pytest.param(core_pb2.ResourceRequirements, {"limits": {"cpu": True}},
                 "limits[cpu]: Invalid value: True: expected string, got boolean", id="bool-quantity"),
    pytest.param(core_pb2.PodSpec, {"nodeSelector": {"disk": 1}},
                 "nodeSelector[disk]: Invalid value: 1: expected string, got number", id="number-in-string-map"),
    pytest.param(core_pb2.Container, "nginx", "<root>: Invalid value: expected object, got string",
                 id="not-an-object"),
])
def test_wrong_types_name_the_field(cls: type, data: Any, message: str) -> None:
    """A value of the wrong type is refused with its path, the value and what was expected."""
    with pytest.raises(InvalidError) as err:
        convert.from_dict(cls, data)
    assert err.value.message == message


def test_unknown_field_lists_the_known_ones() -> None:
    """An unknown field is named with its full path and the fields that would have been accepted."""
    with pytest.raises(InvalidError) as err:
        convert.from_dict(core_pb2.Pod, {"spec": {"containers": [{"name": "c", "imagePolicy": "Always"}]}})
    assert err.value.message.startswith("spec.containers[0].imagePolicy: unknown field: known fields: args, command,")
    assert "imagePullPolicy" in err.value.message


def test_field_names_are_case_sensitive() -> None:
    """A Kubernetes field spelt with the wrong case (imageId for imageID) is an unknown field."""
    with pytest.raises(InvalidError, match="imageId: unknown field"):
        convert.from_dict(core_pb2.ContainerStatus, {"imageId": "x"})
    shown = _dict(core_pb2.ContainerStatus, {"imageID": "a", "containerID": "b"})
    assert (shown["imageID"], shown["containerID"]) == ("a", "b")


def test_every_error_is_reported_at_once() -> None:
    """All problems of a document are reported together, separated by '; '."""
    with pytest.raises(InvalidError) as err:
        convert.from_dict(core_pb2.Pod, {"spec": {"bogus": 1, "containers": [{"ports": [{"containerPort": "80"}]}]}})
    assert len(err.value.errors) == 2
    assert "spec.bogus: unknown field" in err.value.message
    assert "spec.containers[0].ports[0].containerPort: Invalid value: '80'" in err.value.message


def test_null_values_are_unset() -> None:
    """`field: null` leaves the field unset, as Kubernetes treats it."""
    assert _dict(core_pb2.Container, {"image": None, "name": "x"}) == {"name": "x"}
    assert not convert.from_dict(core_pb2.Probe, {"exec": None}).HasField("exec")


def test_empty_object_is_kept() -> None:
    """`emptyDir: {}` stays set: an empty object is not the same as no object."""
    assert _dict(core_pb2.Volume, {"name": "v", "emptyDir": {}}) == {"name": "v", "emptyDir": {}}


def test_nesting_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """Objects nested deeper than MAX_DEPTH are refused naming the path, not followed."""
    monkeypatch.setattr(convert, "MAX_DEPTH", 2)
    with pytest.raises(InvalidError) as err:
        convert.from_dict(core_pb2.Pod, {"spec": {"containers": [{"resources": {"limits": {"cpu": "1"}}}]}})
    assert err.value.message == "spec.containers[0].resources: Invalid value: nested too deeply"


def test_deep_junk_in_a_string_field_is_one_error() -> None:
    """A deep structure where a string belongs is one type error, whatever its depth."""
    deep: Any = "x"
    for _ in range(5000):
        deep = {"a": deep}
    with pytest.raises(InvalidError) as err:
        convert.from_dict(core_pb2.Pod, {"metadata": {"name": deep}})
    assert err.value.message.startswith("metadata.name: Invalid value: ")
    assert err.value.message.endswith("expected string, got object")


# ---------------------------------------------------------------- manifests


@pytest.mark.parametrize(("doc", "error", "message"), [
    pytest.param({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "web"}},
                 UnsupportedError, 'f.yaml (document 2): kind "HorizontalPodAutoscaler" is not supported; supported '
                 f"kinds: {kinds.SUPPORTED_TEXT}", id="hpa"),
    pytest.param({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition"}, UnsupportedError,
                 'kind "CustomResourceDefinition" is not supported', id="crd"),
    pytest.param({"apiVersion": "v1", "kind": "LimitRange"}, UnsupportedError,
                 'kind "LimitRange" is not supported', id="limitrange"),
    pytest.param({"apiVersion": "v1", "kind": "ResourceQuota"}, UnsupportedError,
                 'kind "ResourceQuota" is not supported', id="resourcequota"),
    pytest.param({"apiVersion": "v1", "kind": "pods"}, UnsupportedError, 'kind "pods" is not supported',
                 id="resource-name-is-not-a-kind"),
    pytest.param({"apiVersion": "v1"}, InvalidError, "f.yaml (document 2): kind: Required value", id="no-kind"),
    pytest.param({"kind": "Pod"}, InvalidError, "f.yaml (document 2): apiVersion: Required value",
                 id="no-api-version"),
    pytest.param({"apiVersion": "apps/v1", "kind": "Pod"}, InvalidError,
                 "f.yaml (document 2): apiVersion: Unsupported value: 'apps/v1': Pod is served as \"v1\"",
                 id="wrong-api-version"),
    pytest.param(["a"], InvalidError, "f.yaml (document 2): expected a mapping with apiVersion and kind, got array",
                 id="not-a-mapping"),
    pytest.param({"apiVersion": "v1", "kind": "Pod", "spec": {"containers": [{"imagePolicy": "x"}]}}, InvalidError,
                 "f.yaml (document 2): spec.containers[0].imagePolicy: unknown field", id="unknown-field"),
])
def test_manifest_errors_name_the_document(doc: Any, error: type, message: str) -> None:
    """A manifest kubelite cannot take is refused naming the document, and the kind or field."""
    with pytest.raises(error) as err:
        convert.manifest_to_object(doc, where="f.yaml (document 2)")
    assert message in err.value.message


def _zero(value: Any) -> bool:
    return value in (0, "", False) or (isinstance(value, dict) and all(_zero(v) for v in value.values()))


def _without_added_zeros(out: Any, source: Any) -> Any:
    """`out` without the keys it has and `source` lacks, provided each of those holds only zero values."""
    if isinstance(out, dict) and isinstance(source, dict):
        kept = {}
        for key, value in out.items():
            if key in source:
                kept[key] = _without_added_zeros(value, source[key])
            elif not _zero(value):
                kept[key] = value
        return kept
    if isinstance(out, list) and isinstance(source, list) and len(out) == len(source):
        return [_without_added_zeros(o, s) for o, s in zip(out, source, strict=True)]
    return out


@pytest.mark.parametrize("path", sorted(DOCS.glob("*.yaml")), ids=lambda p: p.stem)
def test_documentation_manifests_round_trip(path: Path) -> None:
    """Every manifest from the Kubernetes documentation converts to protobuf and back unchanged, but for the
    zero values Kubernetes always prints (`status: {}`, `loadBalancer: {}`)."""
    for doc in convert.load_documents(path.read_text(), str(path)):
        envelope = convert.manifest_to_object(doc.data, where=doc.where)
        assert _without_added_zeros(convert.object_to_manifest(envelope), doc.data) == doc.data


def test_object_to_manifest_puts_api_version_and_kind_first() -> None:
    """Printed objects start with apiVersion and kind, as kubectl prints them."""
    ns = core_pb2.Namespace(metadata={"name": "x"})
    assert list(convert.object_to_manifest(ns))[:3] == ["apiVersion", "kind", "metadata"]
    dep = apps_pb2.Deployment(metadata={"name": "d"})
    assert convert.object_to_manifest(kinds.wrap(dep))["apiVersion"] == "apps/v1"


# ---------------------------------------------------------------- documents


def test_load_documents_numbers_documents_and_expands_lists() -> None:
    """Documents are numbered from 1 counting empty ones, and a `kind: List` yields its items."""
    text = "a: 1\n---\n---\nkind: List\nitems: [{x: 1}, {y: 2}]\n---\n- 1\n"
    docs = list(convert.load_documents(text, "f.yaml"))
    assert [(d.index, d.data) for d in docs] == [(1, {"a": 1}), (3, {"x": 1}), (3, {"y": 2}), (4, [1])]
    assert docs[0].where == "f.yaml (document 1)"


def test_load_documents_keeps_times_as_strings() -> None:
    """YAML timestamps stay strings (as Kubernetes reads them), so they print back as written."""
    (doc,) = convert.load_documents("t: 2024-01-02T03:04:05Z\nd: 2024-01-02\n", "f")
    assert doc.data == {"t": "2024-01-02T03:04:05Z", "d": "2024-01-02"}


@pytest.mark.parametrize(("text", "message"), [
    pytest.param("a: 1\n---\nb: [\n", "f.yaml (document 2): line 4: malformed YAML: did not find expected node "
                 "content", id="unclosed-flow"),
    pytest.param("a: 1\n---\nb: 2\n c: 3\n", "f.yaml (document 2): line 4: malformed YAML: mapping values are not "
                 "allowed in this context", id="bad-indent"),
    pytest.param("a: *x\n", "f.yaml (document 1): line 1: malformed YAML: found undefined alias", id="bad-alias"),
    # Too deep: the parser (libyaml has its own limit in newer releases) or the project's own check
    # refuses it first; either way the line names the file, the document and the line.
    pytest.param("a: 1\n---\nx: " + "[" * 2000 + "]" * 2000, "f.yaml (document 2): line 3: ", id="deep-flow"),
    pytest.param("a: [" * 200_000 + "]" * 200_000, "f.yaml (document 1): line 1: ", id="absurdly-deep-flow"),
    pytest.param("".join("  " * i + "a:\n" for i in range(3000)), "f.yaml (document 1): line 101: ",
                 id="deep-block"),
])
def test_malformed_yaml_names_file_document_and_line(text: str, message: str) -> None:
    """Malformed or absurdly nested YAML gives one line naming the file, the document and the line, whichever
    check (the parser's or the project's) refuses it."""
    with pytest.raises(InvalidError) as err:
        list(convert.load_documents(text, "f.yaml"))
    assert err.value.message.startswith(message)
    assert "\n" not in err.value.message


def test_nesting_up_to_the_limit_loads() -> None:
    """YAML nested up to MAX_YAML_DEPTH loads; one level more is refused."""
    ok = "x: " + "[" * (convert.MAX_YAML_DEPTH - 1) + "]" * (convert.MAX_YAML_DEPTH - 1)
    assert len(list(convert.load_documents(ok, "f"))) == 1
    with pytest.raises(InvalidError, match="nested too deeply"):
        list(convert.load_documents("x: [" + ok[3:] + "]", "f"))


def test_libyaml_and_python_loaders_agree() -> None:
    """The fast (libyaml) loader reads manifests exactly as the pure-Python one, times as strings included."""
    text = "".join(p.read_text() + "\n---\n" for p in sorted(DOCS.glob("*.yaml"))) + "t: 2024-01-02T03:04:05Z\n"
    fast = [d.data for d in convert.load_documents(text, "f")]
    slow = [d for d in yaml.load_all(text, Loader=convert._Loader) if d is not None]
    assert fast == slow and fast[-1] == {"t": "2024-01-02T03:04:05Z"}


def test_dump_yaml_keeps_order() -> None:
    """YAML output keeps the manifest's key order."""
    assert convert.dump_yaml({"b": 1, "a": [1]}) == "b: 1\na:\n- 1\n"
    assert yaml.safe_load(convert.dump_yaml({"k": "üñí"})) == {"k": "üñí"}


LAUGHS = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: lol\n" + "".join(
    f"{name}: &{name} [{', '.join([f'*{prev}'] * 9 if prev else ['lol'] * 9)}]\n"
    for prev, name in zip(["", *"abcdefgh"], "abcdefghi", strict=True))


def test_billion_laughs_is_refused_before_expansion() -> None:
    """Nine aliases of nine aliases (a few hundred bytes standing for 9^9 strings) are refused at once, in one
    line naming the file, the document and the line, before any document is built."""
    start = time.perf_counter()
    with pytest.raises(InvalidError) as err:
        list(convert.load_documents(LAUGHS, "laughs.yaml"))
    assert time.perf_counter() - start < 0.5
    assert err.value.message.startswith("laughs.yaml (document 1): line ")
    assert "aliases expand to more than 100000 nodes" in err.value.message
    assert "\n" not in err.value.message


@pytest.mark.parametrize(("aliases", "ok"), [
    pytest.param(99, True, id="within-the-limit"),
    pytest.param(101, False, id="over-the-limit"),
])
def test_alias_expansion_is_counted_exactly(aliases: int, ok: bool) -> None:
    """An anchored list of 999 items (1,000 nodes with the list) may be aliased 99 times, not 101."""
    text = "a: &a [" + ", ".join(["x"] * 999) + "]\nb: [" + ", ".join(["*a"] * aliases) + "]\n"
    if ok:
        (doc,) = convert.load_documents(text, "f")
        assert len(doc.data["b"]) == aliases
    else:
        with pytest.raises(InvalidError, match=r"f \(document 1\): line 2: YAML aliases expand"):
            list(convert.load_documents(text, "f"))


def test_reused_anchors_load() -> None:
    """Anchors reused the ordinary way (a shared env list, a merged mapping) load as before."""
    text = ("common: &env [{name: A, value: '1'}, {name: B, value: '2'}]\n"
            "base: &base {image: nginx, env: *env}\n"
            "c1: {<<: *base, name: one}\nc2: {<<: *base, name: two}\n---\nagain: &env [1]\nuse: *env\n")
    first, second = (d.data for d in convert.load_documents(text, "f"))
    assert first["c2"] == {"image": "nginx", "env": first["common"], "name": "two"}
    assert second == {"again": [1], "use": [1]}


def test_recursive_alias_is_refused() -> None:
    """An alias inside the node it names (a structure containing itself) is refused naming the line."""
    with pytest.raises(InvalidError, match=r"f \(document 1\): line 2: YAML alias \*a refers to a node that "
                                           r"contains it"):
        list(convert.load_documents("a: &a\n  - *a\n", "f"))
