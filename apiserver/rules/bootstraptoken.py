"""Join tokens: the secret's hash never changes (a new secret is a new token); edits are not generations."""

from __future__ import annotations

from google.protobuf.message import Message

from api import validation
from api.errors import FieldError
from apiserver.rules.strategy import Strategy


class Rules(Strategy):
    kind = "BootstrapToken"
    tracks_generation = False

    def validate_update(self, new: Message, old: Message) -> list[FieldError]:
        errs = validation.validate_update(new, old)
        if new.spec.secret_hash != old.spec.secret_hash:  # type: ignore[attr-defined]
            errs.append(FieldError("spec.secretHash", "Invalid value", "field is immutable"))
        return errs
