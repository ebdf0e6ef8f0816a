"""Encryption at rest: Kubernetes' EncryptionConfiguration file and its aesgcm and identity providers.

The file names, per resource, an ordered list of providers: the first one
encrypts every write, all of them are tried on reads. aesgcm values carry
Kubernetes' prefix `k8s:enc:aesgcm:v1:<key name>:`, then a random 12-byte
nonce and the AES-GCM ciphertext with its tag; the etcd key is the
additional authenticated data, so a value copied under another key does not
decrypt. identity stores values as they are.

kubelite encrypts Secrets by default: `kubelite up` and `kubelite bootstrap
control-plane` write a config with one fresh aesgcm key (a 0600 file). An
apiserver started without a config refuses to write Secrets (see
transformers_for) rather than store them in clear text or invent a key that
its peers and its next restart would not know.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

API_VERSION = "apiserver.config.k8s.io/v1"
KIND = "EncryptionConfiguration"
AESGCM_PREFIX = "k8s:enc:aesgcm:v1:"
NONCE_BYTES = 12
KEY_BYTES = 32
# What kubelite encrypts when it writes a config itself.
DEFAULT_RESOURCES = ("secrets",)


class EncryptionConfigError(ValueError):
    """The encryption configuration is wrong; the message names the file and the field."""


class DecryptError(Exception):
    """A stored value no configured provider can read."""


class NotStoredError(Exception):
    """A write of a resource this apiserver must encrypt but has no key for."""


@dataclass(frozen=True)
class Key:
    name: str
    secret: bytes  # 16, 24 or 32 bytes


@dataclass(frozen=True)
class Provider:
    """aesgcm (with its keys, the first one writes) or identity."""

    type: str  # "aesgcm" or "identity"
    keys: tuple[Key, ...] = ()

    @property
    def writer(self) -> str:
        """The tag of what this provider writes: `aesgcm:<first key>` or `identity`."""
        return f"aesgcm:{self.keys[0].name}" if self.type == "aesgcm" else "identity"


@dataclass(frozen=True)
class Transformer:
    """The providers of one resource: the first writes, every one reads."""

    providers: tuple[Provider, ...]
    _ciphers: dict[str, AESGCM] = field(default_factory=dict, compare=False, repr=False)

    @property
    def writer(self) -> str:
        return self.providers[0].writer if self.providers else ""

    def _cipher(self, key: Key) -> AESGCM:
        cipher = self._ciphers.get(key.name)
        if cipher is None:
            cipher = self._ciphers[key.name] = AESGCM(key.secret)
        return cipher

    def encrypt(self, etcd_key: str, plain: bytes) -> bytes:
        if not self.providers:
            raise NotStoredError("no encryption provider configured")
        first = self.providers[0]
        if first.type == "identity":
            return plain
        key = first.keys[0]
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._cipher(key).encrypt(nonce, plain, etcd_key.encode())
        return f"{AESGCM_PREFIX}{key.name}:".encode() + nonce + sealed

    def decrypt(self, etcd_key: str, stored: bytes) -> tuple[bytes, str]:
        """The plaintext and the tag of who wrote it (`aesgcm:<key>` or `identity`)."""
        if stored.startswith(AESGCM_PREFIX.encode()):
            name, sep, rest = stored[len(AESGCM_PREFIX):].partition(b":")
            key_name = name.decode(errors="replace")
            for p in self.providers:
                for key in p.keys if p.type == "aesgcm" else ():
                    if key.name != key_name or not sep:
                        continue
                    try:
                        plain = self._cipher(key).decrypt(rest[:NONCE_BYTES], rest[NONCE_BYTES:], etcd_key.encode())
                    except InvalidTag:
                        raise DecryptError(f"{etcd_key}: AES-GCM key {key_name!r} does not open this value "
                                           f"(damaged, or moved from another key)") from None
                    return plain, f"aesgcm:{key_name}"
            raise DecryptError(f"{etcd_key}: encrypted with AES-GCM key {key_name!r}, which is not configured")
        if stored.startswith(b"k8s:enc:"):
            raise DecryptError(f"{etcd_key}: encrypted by a provider kubelite does not have "
                               f"({stored[:40].decode(errors='replace')}...)")
        if any(p.type == "identity" for p in self.providers):
            return stored, "identity"
        raise DecryptError(f"{etcd_key}: stored unencrypted, and no identity provider is configured to read it")


@dataclass(frozen=True)
class EncryptionConfig:
    resources: Mapping[str, Transformer]  # resource ("secrets") -> its providers

    def transformer(self, resource: str) -> Transformer | None:
        return self.resources.get(resource)


def _b64_key(text: Any, where: str) -> bytes:
    if not isinstance(text, str):
        raise EncryptionConfigError(f"{where}: expected a base64 string")
    try:
        raw = base64.b64decode(text.encode(), validate=True)
    except (ValueError, binascii.Error):
        raise EncryptionConfigError(f"{where}: not valid base64") from None
    if len(raw) not in (16, 24, 32):
        raise EncryptionConfigError(f"{where}: an AES key is 16, 24 or 32 bytes, got {len(raw)}")
    return raw


def _provider(item: Any, where: str) -> Provider:
    if not isinstance(item, dict) or len(item) != 1:
        raise EncryptionConfigError(f"{where}: expected exactly one provider (aesgcm or identity)")
    (name, body), = item.items()
    if name == "identity":
        return Provider("identity")
    if name != "aesgcm":
        raise EncryptionConfigError(f"{where}: unsupported provider {name!r}; supported: aesgcm, identity")
    keys_data = body.get("keys") if isinstance(body, dict) else None
    if not isinstance(keys_data, list) or not keys_data:
        raise EncryptionConfigError(f"{where}.aesgcm.keys: at least one key is required")
    keys = []
    for i, k in enumerate(keys_data):
        kw = f"{where}.aesgcm.keys[{i}]"
        if not isinstance(k, dict) or not isinstance(k.get("name"), str) or not k["name"]:
            raise EncryptionConfigError(f"{kw}.name: required")
        if ":" in k["name"]:
            raise EncryptionConfigError(f"{kw}.name: must not contain ':'")
        keys.append(Key(k["name"], _b64_key(k.get("secret"), f"{kw}.secret")))
    names = [k.name for k in keys]
    if len(set(names)) != len(names):
        raise EncryptionConfigError(f"{where}.aesgcm.keys: key names must be unique")
    return Provider("aesgcm", tuple(keys))


def parse(data: Any, where: str = "encryption config") -> EncryptionConfig:
    """An EncryptionConfiguration from its YAML mapping; anything wrong or unsupported is refused by name."""
    if not isinstance(data, dict):
        raise EncryptionConfigError(f"{where}: expected a mapping")
    if data.get("kind") != KIND or data.get("apiVersion") != API_VERSION:
        raise EncryptionConfigError(f"{where}: expected apiVersion {API_VERSION} and kind {KIND}")
    unknown = set(data) - {"apiVersion", "kind", "resources"}
    if unknown:
        raise EncryptionConfigError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
    out: dict[str, Transformer] = {}
    for i, entry in enumerate(data.get("resources") or []):
        w = f"{where}: resources[{i}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("resources"), list) or \
                not isinstance(entry.get("providers"), list) or not entry["providers"]:
            raise EncryptionConfigError(f"{w}: needs `resources` and a non-empty `providers` list")
        transformer = Transformer(tuple(_provider(p, f"{w}.providers[{j}]")
                                        for j, p in enumerate(entry["providers"])))
        for r in entry["resources"]:
            name = str(r).split(".", 1)[0]  # "secrets" or "secrets." (core group)
            if name in out:
                raise EncryptionConfigError(f"{w}: resource {name!r} is named twice")
            out[name] = transformer
    return EncryptionConfig(out)


def load(path: str | Path) -> EncryptionConfig:
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise EncryptionConfigError(f"{path}: {e.strerror or e}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise EncryptionConfigError(f"{path}: not valid YAML: {str(e).splitlines()[0]}") from None
    return parse(data, str(path))


# ---------------------------------------------------------------- writing a config


def new_key_secret() -> str:
    return base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode()


def render(keys: Sequence[tuple[str, str]], resources: Iterable[str] = DEFAULT_RESOURCES) -> dict[str, Any]:
    """A config that writes with the first of `keys` (name, base64 secret), reads with all, and reads
    unencrypted values (identity last, as Kubernetes' guide has it)."""
    return {"apiVersion": API_VERSION, "kind": KIND, "resources": [{
        "resources": list(resources),
        "providers": [{"aesgcm": {"keys": [{"name": n, "secret": s} for n, s in keys]}}, {"identity": {}}],
    }]}


def write_file(path: str | Path, data: Mapping[str, Any]) -> None:
    """Write the config atomically, readable by its owner only (0600 from the start)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(yaml.safe_dump(dict(data), sort_keys=False))
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, 0o600)
    os.replace(tmp, p)


def ensure_file(path: str | Path) -> bool:
    """Write a config with one new key if there is none; True if one was written."""
    p = Path(path)
    if p.exists():
        return False
    write_file(p, render([("key1", new_key_secret())]))
    return True


def plan_rotation(data: Any, *, resource: str = "secrets", secret: str | None = None) -> tuple[dict[str, Any], str]:
    """The config with a new aesgcm key first for `resource` (the old ones still read); and the new key's name."""
    parse(data)  # refuse to rotate a config the apiserver would refuse
    out = yaml.safe_load(yaml.safe_dump(data))
    for entry in out.get("resources") or []:
        if resource not in [str(r).split(".", 1)[0] for r in entry.get("resources", [])]:
            continue
        providers = entry["providers"]
        aes = next((p for p in providers if "aesgcm" in p), None)
        if aes is None:
            aes = {"aesgcm": {"keys": []}}
        else:
            providers.remove(aes)
        taken = {k["name"] for k in aes["aesgcm"]["keys"]}
        n = len(taken) + 1
        while f"key{n}" in taken:
            n += 1
        name = f"key{n}"
        aes["aesgcm"]["keys"].insert(0, {"name": name, "secret": secret or new_key_secret()})
        providers.insert(0, aes)
        return out, name
    raise EncryptionConfigError(f"no providers are configured for {resource}")
