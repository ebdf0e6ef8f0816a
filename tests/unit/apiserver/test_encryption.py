"""Encryption at rest: the EncryptionConfiguration file, the aesgcm and identity providers, key rotation."""

from __future__ import annotations

from typing import Any

import pytest

from apiserver import encryption

KEY1 = ("key1", encryption.new_key_secret())
KEY2 = ("key2", encryption.new_key_secret())


def _t(*keys: tuple[str, str], identity: bool = True) -> encryption.Transformer:
    config = encryption.parse(encryption.render(list(keys)) if identity else {
        **encryption.render(list(keys)),
        "resources": [{"resources": ["secrets"], "providers": encryption.render(list(keys))["resources"][0][
            "providers"][:1]}]})
    t = config.transformer("secrets")
    assert t is not None
    return t


def test_values_are_sealed_with_the_kubernetes_prefix_and_open_again() -> None:
    """The first key writes `k8s:enc:aesgcm:v1:<key>:` + nonce + ciphertext; every configured key reads."""
    old = _t(KEY1)
    sealed = old.encrypt("/registry/secrets/ns/a", b"clear text")
    assert sealed.startswith(b"k8s:enc:aesgcm:v1:key1:") and b"clear text" not in sealed
    assert old.encrypt("/registry/secrets/ns/a", b"clear text") != sealed  # a fresh nonce each time
    rotated = _t(KEY2, KEY1)
    assert rotated.decrypt("/registry/secrets/ns/a", sealed) == (b"clear text", "aesgcm:key1")
    assert rotated.writer == "aesgcm:key2"


def test_a_value_moved_to_another_key_does_not_open() -> None:
    """The etcd key is authenticated data: ciphertext copied under another key is refused."""
    t = _t(KEY1)
    sealed = t.encrypt("/registry/secrets/ns/a", b"x")
    with pytest.raises(encryption.DecryptError, match="does not open"):
        t.decrypt("/registry/secrets/ns/b", sealed)


@pytest.mark.parametrize(("stored", "identity", "message"), [
    pytest.param(b"k8s:enc:aesgcm:v1:gone:xxxxxxxxxxxxxxxxxxxxxxxx", True, "not configured", id="unknown-key"),
    pytest.param(b"k8s:enc:kms:v2:x:abc", True, "does not have", id="other-provider"),
    pytest.param(b"\x0a\x02hi", False, "no identity provider", id="plain-without-identity"),
])
def test_unreadable_values_say_why(stored: bytes, identity: bool, message: str) -> None:
    """A value no provider reads is refused with the reason."""
    with pytest.raises(encryption.DecryptError, match=message):
        _t(KEY1, identity=identity).decrypt("/registry/secrets/ns/a", stored)


def test_identity_reads_values_stored_before_encryption() -> None:
    """With identity configured after aesgcm, unencrypted values still read (and are stale for the writer)."""
    assert _t(KEY1).decrypt("/registry/secrets/ns/a", b"\x0a\x02hi") == (b"\x0a\x02hi", "identity")


def _config(**changes: Any) -> dict[str, Any]:
    base = encryption.render([KEY1])
    base.update(changes)
    return base


@pytest.mark.parametrize(("data", "message"), [
    pytest.param([], "expected a mapping", id="not-a-mapping"),
    pytest.param(_config(kind="Other"), "expected apiVersion", id="wrong-kind"),
    pytest.param(_config(extra=1), "unknown field", id="unknown-field"),
    pytest.param(_config(resources=[{"resources": ["secrets"], "providers": [{"kms": {}}]}]),
                 "unsupported provider 'kms'", id="unsupported-provider"),
    pytest.param(_config(resources=[{"resources": ["secrets"], "providers": [{"aesgcm": {"keys": [
        {"name": "k", "secret": "c2hvcnQ="}]}}]}]), "16, 24 or 32 bytes", id="short-key"),
    pytest.param(_config(resources=[{"resources": ["secrets"], "providers": [{"aesgcm": {"keys": [
        {"name": "a:b", "secret": KEY1[1]}]}}]}]), "must not contain ':'", id="colon-in-name"),
    pytest.param(_config(resources=[{"resources": ["secrets"], "providers": []}]), "non-empty", id="no-providers"),
])
def test_bad_configs_are_refused_by_field(data: Any, message: str) -> None:
    """Anything wrong in the file is refused naming what."""
    with pytest.raises(encryption.EncryptionConfigError, match=message):
        encryption.parse(data)


def test_rotation_puts_a_new_key_first_and_keeps_the_old_ones() -> None:
    """plan_rotation adds key2 as the writer; key1 still reads; identity stays last."""
    new, name = encryption.plan_rotation(encryption.render([KEY1]), secret=KEY2[1])
    assert name == "key2"
    providers = new["resources"][0]["providers"]
    assert [k["name"] for k in providers[0]["aesgcm"]["keys"]] == ["key2", "key1"]
    assert providers[-1] == {"identity": {}}
    assert encryption.parse(new).transformer("secrets").writer == "aesgcm:key2"  # type: ignore[union-attr]
