"""SelfSubjectReview, SelfSubjectAccessReview and SelfSubjectRulesReview bodies: what they ask, their answers, their
errors by field."""

from __future__ import annotations

from typing import Any

import pytest

from api.errors import InvalidError
from api.pb import rbac_pb2
from apiserver.authn import UserInfo
from apiserver.authz import Attributes, Decision
from apiserver.rest import accessreviews

ALICE = UserInfo("alice", "u-1", ("system:authenticated",))


def _review(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview", "spec": spec}


@pytest.mark.parametrize(("spec", "want"), [
    pytest.param({"resourceAttributes": {"namespace": "dev", "verb": "get", "group": "apps", "version": "v1",
                                         "resource": "deployments", "subresource": "scale", "name": "web"}},
                 Attributes(ALICE, "get", "deployments", "scale", "dev", "web", "apps"), id="resource"),
    pytest.param({"resourceAttributes": {"verb": "list", "resource": "pods"}}, Attributes(ALICE, "list", "pods"),
                 id="every-namespace"),
    pytest.param({"nonResourceAttributes": {"path": "/healthz", "verb": "get"}},
                 Attributes(ALICE, "get", path="/healthz"), id="path"),
])
def test_access_attributes(spec: dict[str, Any], want: Attributes) -> None:
    assert accessreviews.access_attributes(_review(**spec), ALICE) == want


@pytest.mark.parametrize(("body", "field"), [
    pytest.param(_review(), "spec", id="neither"),
    pytest.param(_review(resourceAttributes={"verb": "get"}, nonResourceAttributes={"path": "/"}),
                 "spec.resourceAttributes", id="both"),
    pytest.param(_review(resourceAttributes={"verb": "get", "fieldSelector": {"rawSelector": "a=b"}}),
                 "spec.resourceAttributes.fieldSelector", id="selector-not-served"),
    pytest.param(_review(resourceAttributes={"verb": 3}), "spec.resourceAttributes.verb", id="not-a-string"),
    pytest.param(_review(user="bob"), "spec.user", id="another-subject"),
    pytest.param({**_review(resourceAttributes={}), "kind": "SubjectAccessReview"}, "kind", id="other-kind"),
    pytest.param({**_review(resourceAttributes={}), "extra": 1}, "extra", id="unknown-field"),
])
def test_access_review_errors_name_the_field(body: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidError) as e:
        accessreviews.access_attributes(body, ALICE)
    assert [err.path for err in e.value.errors] == [field]


def test_access_response_gives_a_reason_only_when_allowed() -> None:
    body = _review(resourceAttributes={"verb": "get", "resource": "pods"})
    yes = accessreviews.access_response(body, Decision(True, 'RBAC: allowed by RoleBinding "dev/rb"'))
    assert yes["status"] == {"allowed": True, "reason": 'RBAC: allowed by RoleBinding "dev/rb"'}
    assert yes["spec"] == body["spec"]
    assert accessreviews.access_response(body, Decision(False, "forbidden"))["status"] == {"allowed": False}


def test_rules_response_lists_each_rule_once() -> None:
    reader = rbac_pb2.PolicyRule(verbs=["get", "list"], api_groups=[""], resources=["pods"], resource_names=["web"])
    path = rbac_pb2.PolicyRule(verbs=["get"], non_resource_urls=["/healthz"])
    out = accessreviews.rules_response("dev", [reader, path, reader], incomplete=False)
    assert out["spec"] == {"namespace": "dev"}
    assert out["status"] == {
        "resourceRules": [{"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"],
                           "resourceNames": ["web"]}],
        "nonResourceRules": [{"verbs": ["get"], "nonResourceURLs": ["/healthz"]}], "incomplete": False}
    assert accessreviews.rules_namespace({"kind": "SelfSubjectRulesReview", "spec": {"namespace": "dev"}}) == "dev"
    with pytest.raises(InvalidError) as e:
        accessreviews.rules_namespace({"kind": "SelfSubjectRulesReview", "spec": {"namespace": "dev", "x": "y"}})
    assert e.value.errors[0].path == "spec.x"


def test_whoami_names_the_caller_and_takes_no_fields() -> None:
    """kubectl's SelfSubjectReview (as its protobuf reads) is answered with the caller; a spec, another field or
    another kind is refused by name."""
    kubectl = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview",
               "metadata": {"creationTimestamp": None}, "status": {"userInfo": {}}}
    assert accessreviews.whoami_response(kubectl, ALICE)["status"] == {
        "userInfo": {"username": "alice", "uid": "u-1", "groups": ["system:authenticated"]}}
    for body, field in (({**kubectl, "spec": {}}, "spec"), ({**kubectl, "extra": 1}, "extra"),
                        (_review(), "kind")):
        with pytest.raises(InvalidError) as e:
            accessreviews.whoami_response(body, ALICE)
        assert [err.path for err in e.value.errors] == [field]
