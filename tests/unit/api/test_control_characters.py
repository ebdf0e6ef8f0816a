"""Names, labels and every other field refuse control characters and trailing newlines, naming the field;
free text (commands, arguments, environment values, annotation values, messages) keeps its newlines."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from api import convert, labels, names, text, validation
from api.pb import api_pb2, core_pb2

POD: dict[str, Any] = {"metadata": {"name": "p", "namespace": "default"},
                       "spec": {"containers": [{"name": "c", "image": "nginx:1.25"}]}}
SERVICE: dict[str, Any] = {"metadata": {"name": "s", "namespace": "default"},
                           "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80},
                                                                          {"name": "dns", "port": 53}]}}


def _pod(**changes: Any) -> core_pb2.Pod:
    data = copy.deepcopy(POD)
    for path, value in changes.items():
        target: Any = data
        parts = path.split(".")
        for part in parts[:-1]:
            target = target[int(part)] if isinstance(target, list) else target.setdefault(part, {})
        target[parts[-1]] = value
    return convert.from_dict(core_pb2.Pod, data)  # type: ignore[return-value]


def _paths(obj: Any) -> list[str]:
    return [e.path for e in validation.validate(obj)]


@pytest.mark.parametrize(("change", "path"), [
    pytest.param({"metadata.name": "web\n"}, "metadata.name", id="name-trailing-newline"),
    pytest.param({"metadata.name": "a\tb"}, "metadata.name", id="name-tab"),
    pytest.param({"metadata.name": "web\x00"}, "metadata.name", id="name-nul"),
    pytest.param({"metadata.name": "web\r"}, "metadata.name", id="name-carriage-return"),
    pytest.param({"metadata.namespace": "default\n"}, "metadata.namespace", id="namespace-newline"),
    pytest.param({"metadata.generateName": "web-\n"}, "metadata.generateName", id="generate-name"),
    pytest.param({"metadata.labels": {"app": "web\n"}}, "metadata.labels[app]", id="label-value-newline"),
    pytest.param({"metadata.labels": {"app\n": "web"}}, "metadata.labels", id="label-key-newline"),
    pytest.param({"metadata.annotations": {"note\n": "x"}}, "metadata.annotations", id="annotation-key-newline"),
    pytest.param({"spec.containers.0.name": "c\n"}, "spec.containers[0].name", id="container-name"),
    pytest.param({"spec.containers.0.image": "nginx\n"}, "spec.containers[0].image", id="image-newline"),
    pytest.param({"spec.containers.0.image": "nginx\x1b[2J"}, "spec.containers[0].image", id="image-escape"),
    pytest.param({"spec.containers.0.ports": [{"name": "http\n", "containerPort": 80}]},
                 "spec.containers[0].ports[0].name", id="container-port-name"),
    pytest.param({"spec.containers.0.env": [{"name": "A\n", "value": "1"}]}, "spec.containers[0].env[0].name",
                 id="env-name"),
    pytest.param({"spec.nodeName": "n1\n"}, "spec.nodeName", id="node-name"),
    pytest.param({"spec.hostname": "h\u2028"}, "spec.hostname", id="hostname-line-separator"),
    pytest.param({"spec.volumes": [{"name": "v", "hostPath": {"path": "/data\n/x"}}]},
                 "spec.volumes[0].hostPath.path", id="host-path"),
    pytest.param({"spec.containers.0.args": ["ok\x07"]}, "spec.containers[0].args[0]", id="bell-in-args"),
])
def test_control_characters_are_refused_naming_the_field(change: dict[str, Any], path: str) -> None:
    """Each control character (or trailing newline) is refused once, with the field's path."""
    paths = _paths(_pod(**change))
    assert path in paths
    assert paths.count(path) == 1


@pytest.mark.parametrize("change", [
    pytest.param({"spec.containers.0.command": ["sh", "-c", "echo a\n\techo b\r\n"]}, id="script"),
    pytest.param({"spec.containers.0.args": ["line one\nline two"]}, id="args"),
    pytest.param({"spec.containers.0.env": [{"name": "PEM", "value": "-----BEGIN-----\nabc\n"}]}, id="env-value"),
    pytest.param({"metadata.annotations": {"note": "first\nsecond\ttab"}}, id="annotation-value"),
])
def test_free_text_keeps_newlines_and_tabs(change: dict[str, Any]) -> None:
    """Commands, arguments, environment values and annotation values may span lines."""
    assert validation.validate(_pod(**change)) == []


@pytest.mark.parametrize("port_name", ["http\n", "a\tb", "dns\x00"])
def test_service_port_names_are_matched_whole(port_name: str) -> None:
    """A Service port name with a control character is refused (it would reach iptables rule comments)."""
    data = copy.deepcopy(SERVICE)
    data["spec"]["ports"][0]["name"] = port_name
    svc = convert.from_dict(core_pb2.Service, data)
    assert "spec.ports[0].name" in _paths(svc)


@pytest.mark.parametrize(("check", "value"), [
    pytest.param(names.dns1123_label, "web\n", id="dns1123-label"),
    pytest.param(names.dns1123_subdomain, "web.example\n", id="dns1123-subdomain"),
    pytest.param(names.dns1035_label, "web\n", id="dns1035-label"),
    pytest.param(names.iana_svc_name, "http\n", id="iana-service-name"),
])
def test_name_rules_match_the_whole_value(check: Any, value: str) -> None:
    """`$` matches before a final newline; the name rules do not let one through."""
    assert check(value) is not None
    assert check(value.rstrip("\n")) is None


@pytest.mark.parametrize("value", ["web\n", "a\tb", "x\x7f"])
def test_label_keys_and_values_are_matched_whole(value: str) -> None:
    """Label keys and values with a trailing newline or other control character are refused."""
    assert labels.key_errors(value) and labels.value_errors(value)


def test_request_fields_are_checked_but_not_the_object() -> None:
    """A request's own fields (names, selectors) are checked; the object it carries is left to validation."""
    req = api_pb2.GetRequest(resource="pods", namespace="default", name="web\n")
    assert [str(e) for e in text.control_errors(req)] == [
        "name: Invalid value: 'web\\n': must not contain control characters"]
    create = api_pb2.CreateRequest(object={"pod": {"metadata": {"name": "web\n"}}})
    assert text.control_errors(create, skip=frozenset({"object"})) == []
    exec_ = api_pb2.ExecRequest(namespace="default", name="p", command=["sh", "-c", "echo a\necho b"])
    assert text.control_errors(exec_) == []


def test_escape_keeps_messages_on_one_line() -> None:
    """Error messages carry control characters as escapes, so they stay one line."""
    assert text.escape('Pod "web\n" is invalid') == 'Pod "web\\n" is invalid'
