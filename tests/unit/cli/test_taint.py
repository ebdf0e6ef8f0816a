"""`kubelite taint` specs as kubectl reads them: add with an effect, remove one effect or every effect of a key."""

from __future__ import annotations

import pytest

from cli.common import CliError
from cli.verbs import parse_taint


@pytest.mark.parametrize(("spec", "expect"), [
    pytest.param("dedicated=x:NoExecute", ("dedicated", "x", "NoExecute", False), id="add"),
    pytest.param("dedicated:NoSchedule", ("dedicated", "", "NoSchedule", False), id="add-without-value"),
    pytest.param("dedicated:NoExecute-", ("dedicated", "", "NoExecute", True), id="remove-one-effect"),
    pytest.param("dedicated-", ("dedicated", "", "", True), id="remove-every-effect"),
    pytest.param("dedicated=x-", ("dedicated", "x", "", True), id="remove-with-value"),
    pytest.param("example.com/my-key-", ("example.com/my-key", "", "", True), id="remove-key-with-dashes"),
    pytest.param("my-key=a-b:PreferNoSchedule", ("my-key", "a-b", "PreferNoSchedule", False), id="dashes-inside"),
])
def test_parse_taint(spec: str, expect: tuple[str, str, str, bool]) -> None:
    """A trailing '-' removes; without an effect it removes the key with every effect."""
    taint, remove = parse_taint(spec)
    assert (taint.key, taint.value, taint.effect, remove) == expect


@pytest.mark.parametrize(("spec", "message"), [
    pytest.param("dedicated=x", "an effect is required", id="no-effect"),
    pytest.param("dedicated:Sometimes", "invalid taint spec", id="unknown-effect"),
    pytest.param("-", "invalid taint spec", id="only-dash"),
    pytest.param("bad key:NoSchedule", "invalid taint spec", id="bad-key"),
])
def test_parse_taint_refuses(spec: str, message: str) -> None:
    """Bad specs are refused with a message naming the spec."""
    with pytest.raises(CliError, match=message):
        parse_taint(spec)
