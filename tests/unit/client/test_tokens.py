"""Join tokens: their one format, what the cluster stores of them, what a user mistyping one is told."""

from __future__ import annotations

import datetime

import pytest

from client import tokens

HASH = "sha256:" + "ab" * 32


def test_generated_token_round_trips() -> None:
    """A new token prints as K10<hash>::<id>.<secret> and parses back to itself."""
    token = tokens.generate(HASH)
    text = str(token)
    assert text.startswith("K10" + "ab" * 32 + "::") and len(token.id) == 6 and len(token.secret) == 16
    assert tokens.parse(text) == token
    assert tokens.split_bearer(token.bearer) == (token.id, token.secret)


@pytest.mark.parametrize("text", [
    pytest.param("abcdef.0123456789abcdef", id="kubeadm-form-without-the-ca-hash"),
    pytest.param("K10" + "ab" * 31 + "::abcdef.0123456789abcdef", id="short-hash"),
    pytest.param("K10" + "AB" * 32 + "::abcdef.0123456789abcdef", id="uppercase-hash"),
    pytest.param("K10" + "ab" * 32 + "::abcde.0123456789abcdef", id="short-id"),
    pytest.param("K10" + "ab" * 32 + "::abcdef:0123456789abcdef", id="colon"),
    pytest.param("K10" + "ab" * 32 + "::ABCDEF.0123456789abcdef", id="uppercase-id"),
    pytest.param("", id="empty"),
])
def test_malformed_tokens_are_refused_saying_the_format(text: str) -> None:
    """Anything but the exact form is refused with the form spelled out (a token always pins the CA)."""
    with pytest.raises(tokens.TokenFormatError, match=r"K10<sha256 of the cluster CA"):
        tokens.parse(text)


def test_stored_object_keeps_only_a_hash_and_the_expiry() -> None:
    """The BootstrapToken holds the id, sha256 of the secret and the expiry: never the secret."""
    token = tokens.JoinToken(HASH, "abcdef", "0123456789abcdef")
    now = datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC)
    obj = tokens.token_object(token, ttl=datetime.timedelta(hours=2), description="n4", now=now)
    assert obj.metadata.name == "abcdef"
    assert obj.spec.secret_hash == tokens.secret_hash("0123456789abcdef") != token.secret
    assert token.secret not in str(obj)
    assert obj.spec.expiration.ToDatetime(tzinfo=datetime.UTC) == now + datetime.timedelta(hours=2)
    assert not tokens.token_object(token, ttl=None).spec.HasField("expiration")
