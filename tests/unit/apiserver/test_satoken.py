"""ServiceAccount tokens: the claims signed, and every reason a token is refused."""

from __future__ import annotations

import base64
import datetime
import json

import pytest

from api.pb import core_pb2
from apiserver import satoken
from apiserver.admission import resolve_automount
from client import pki

NOW = datetime.datetime(2026, 1, 1, 12, 0, tzinfo=datetime.UTC)
KEY = pki.new_key()
OTHER = pki.new_key()


def _token(key: object = KEY, **kw: object) -> str:
    args: dict[str, object] = {"namespace": "team", "name": "robot", "uid": "u1", "audiences": [satoken.ISSUER],
                               "now": NOW, "seconds": 600, **kw}
    return satoken.sign(key, **args)  # type: ignore[arg-type]


def _claims(token: str) -> dict[str, object]:
    body = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))


def test_claims_are_kubernetes_bound_token_claims() -> None:
    """iss, sub, aud, exp, iat, nbf and kubernetes.io {namespace, serviceaccount, pod}, as Kubernetes signs them."""
    token = _token(pod_name="web", pod_uid="p1")
    assert satoken.looks_like(token)
    assert _claims(token) == {
        "aud": [satoken.ISSUER], "exp": int(NOW.timestamp()) + 600, "iat": int(NOW.timestamp()),
        "iss": satoken.ISSUER, "nbf": int(NOW.timestamp()), "sub": "system:serviceaccount:team:robot",
        "kubernetes.io": {"namespace": "team", "serviceaccount": {"name": "robot", "uid": "u1"},
                          "pod": {"name": "web", "uid": "p1"}}}
    claims = satoken.verify(token, [KEY.public_key()], audiences=[satoken.ISSUER], now=NOW)
    assert (claims.username, claims.groups) == ("system:serviceaccount:team:robot",
                                                ("system:serviceaccounts", "system:serviceaccounts:team"))
    assert (claims.uid, claims.pod_name, claims.pod_uid) == ("u1", "web", "p1")


def _tampered() -> str:
    head, _, sig = _token().split(".")
    claims = _claims(_token())
    claims["sub"] = "system:serviceaccount:kube-system:admin"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{head}.{forged}.{sig}"


@pytest.mark.parametrize(("token", "now", "audiences", "error"), [
    pytest.param(lambda: _token(), NOW + datetime.timedelta(seconds=600), [satoken.ISSUER], "expired", id="expired"),
    pytest.param(lambda: _token(), NOW - datetime.timedelta(minutes=5), [satoken.ISSUER], "not valid yet",
                 id="not-yet-valid"),
    pytest.param(lambda: _token(audiences=["vault"]), NOW, [satoken.ISSUER], "audience", id="other-audience"),
    pytest.param(lambda: _token(key=OTHER), NOW, [satoken.ISSUER], "invalid signature", id="other-key"),
    pytest.param(_tampered, NOW, [satoken.ISSUER], "invalid signature", id="tampered-claims"),
    pytest.param(lambda: _token(issuer="https://elsewhere"), NOW, [satoken.ISSUER], "issuer", id="other-issuer"),
    pytest.param(lambda: "eyJhbGciOiJub25lIn0.e30.", NOW, [satoken.ISSUER], "ES256 only", id="alg-none"),
    pytest.param(lambda: "a.b", NOW, [satoken.ISSUER], "malformed", id="malformed"),
])
def test_refused_tokens(token, now: datetime.datetime, audiences: list[str], error: str) -> None:  # type: ignore[no-untyped-def]
    """A token is refused when expired, early, for another audience, signed by another key or tampered with."""
    with pytest.raises(satoken.TokenError, match=error):
        satoken.verify(token(), [KEY.public_key()], audiences=audiences, now=now)


@pytest.mark.parametrize(("pod", "sa", "expected"), [
    pytest.param(None, None, True, id="default-yes"),
    pytest.param(None, False, False, id="service-account-says-no"),
    pytest.param(True, False, True, id="pod-overrides-service-account"),
    pytest.param(False, True, False, id="pod-says-no"),
])
def test_automount_resolution(pod: bool | None, sa: bool | None, expected: bool) -> None:
    """The pod's automountServiceAccountToken wins, then its ServiceAccount's, then true."""
    p, s = core_pb2.Pod(), core_pb2.ServiceAccount()
    if pod is not None:
        p.spec.automount_service_account_token = pod
    if sa is not None:
        s.automount_service_account_token = sa
    assert resolve_automount(p, s) is expected
