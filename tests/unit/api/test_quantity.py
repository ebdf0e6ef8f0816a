"""Kubernetes quantities: parsing, rounding and formatting."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from api import quantity


@pytest.mark.parametrize(("text", "exact"), [
    pytest.param("500m", Decimal("0.5"), id="milli"),
    pytest.param("250000n", Decimal("0.00025"), id="nano"),
    pytest.param("1n", Decimal("1e-9"), id="one-nano"),
    pytest.param("500u", Decimal("0.0005"), id="micro"),
    pytest.param("1.5u", Decimal("0.0000015"), id="fractional-micro"),
    pytest.param("-2n", Decimal("-2e-9"), id="negative-nano"),
    pytest.param(".5u", Decimal("5e-7"), id="leading-dot-micro"),
    pytest.param("1000000000n", Decimal(1), id="nano-whole"),
    pytest.param("2.5e-9", Decimal("2.5e-9"), id="exponent-fraction"),
    pytest.param("1e+3", Decimal(1000), id="exponent-plus"),
    pytest.param("1.5E2", Decimal(150), id="exponent-upper-fraction"),
    pytest.param("0.5Ki", Decimal(512), id="fractional-kibi"),
    pytest.param("1.5M", Decimal(1_500_000), id="fractional-mega"),
    pytest.param("1.5", Decimal("1.5"), id="decimal"),
    pytest.param("128Mi", Decimal(128 * 2**20), id="mebi"),
    pytest.param("1Ki", Decimal(1024), id="kibi"),
    pytest.param("2Gi", Decimal(2 * 2**30), id="gibi"),
    pytest.param("1Ti", Decimal(2**40), id="tebi"),
    pytest.param("1Pi", Decimal(2**50), id="pebi"),
    pytest.param("1Ei", Decimal(2**60), id="exbi"),
    pytest.param("1k", Decimal(1000), id="kilo"),
    pytest.param("1M", Decimal(10**6), id="mega"),
    pytest.param("1G", Decimal(10**9), id="giga"),
    pytest.param("1T", Decimal(10**12), id="tera"),
    pytest.param("1P", Decimal(10**15), id="peta"),
    pytest.param("1E", Decimal(10**18), id="exa-suffix-not-exponent"),
    pytest.param("2e3", Decimal(2000), id="exponent"),
    pytest.param("1E3", Decimal(1000), id="exponent-upper"),
    pytest.param("1e-3", Decimal("0.001"), id="negative-exponent"),
    pytest.param(".5", Decimal("0.5"), id="leading-dot"),
    pytest.param("1.", Decimal(1), id="trailing-dot"),
    pytest.param("+1", Decimal(1), id="plus-sign"),
    pytest.param("-1", Decimal(-1), id="minus-sign"),
    pytest.param("0", Decimal(0), id="zero"),
    pytest.param(" 250m ", Decimal("0.25"), id="surrounding-space"),
    pytest.param(2, Decimal(2), id="yaml-int"),
    pytest.param(0.25, Decimal("0.25"), id="yaml-float"),
])
def test_parse_exact(text: str | int | float, exact: Decimal) -> None:
    """A valid quantity parses to its exact decimal value."""
    assert quantity.parse(text) == exact


@pytest.mark.parametrize("text", [
    pytest.param("", id="empty"),
    pytest.param("abc", id="letters"),
    pytest.param("Mi", id="suffix-only"),
    pytest.param("1.5.5", id="two-dots"),
    pytest.param("1 Mi", id="inner-space"),
    pytest.param("1K", id="capital-k-is-not-a-suffix"),
    pytest.param("1x", id="unknown-suffix"),
    pytest.param("1N", id="capital-n"),
    pytest.param("1U", id="capital-u"),
    pytest.param("1mi", id="lowercase-binary"),
    pytest.param("1nn", id="two-suffixes"),
    pytest.param("1e", id="exponent-without-digits"),
    pytest.param("1e1.5", id="fractional-exponent"),
    pytest.param("1Ki2", id="digits-after-binary"),
    pytest.param("500m\n", id="trailing-newline"),
    pytest.param("5\t00m", id="tab"),
    pytest.param("e3", id="exponent-only"),
    pytest.param("1" * 70, id="too-long"),
    pytest.param(True, id="yaml-bool"),
])
def test_parse_rejects_bad_syntax(text: object) -> None:
    """Anything that is not a quantity is refused with the syntax Kubernetes documents."""
    with pytest.raises(quantity.QuantityError, match="quantities must match the regular expression"):
        quantity.parse(text)  # type: ignore[arg-type]


def test_parse_rejects_huge_exponent() -> None:
    """An absurd exponent is refused instead of building an enormous number."""
    with pytest.raises(quantity.QuantityError, match="exponent out of range"):
        quantity.parse("1e40")


@pytest.mark.parametrize(("text", "milli", "value"), [
    pytest.param("250m", 250, 1, id="cpu-millis"),
    pytest.param("1", 1000, 1, id="one-cpu"),
    pytest.param("1.5", 1500, 2, id="value-rounds-up"),
    pytest.param("0.0001", 1, 1, id="milli-rounds-up"),
    pytest.param("128Mi", 128 * 2**20 * 1000, 128 * 2**20, id="memory"),
    pytest.param("-1", -1000, -1, id="negative"),
    pytest.param("250000n", 1, 1, id="nano-rounds-up"),
    pytest.param("500u", 1, 1, id="micro-rounds-up"),
    pytest.param("1500000000n", 1500, 2, id="nano-whole-cpus"),
    pytest.param("2500000u", 2500, 3, id="micro-whole-cpus"),
])
def test_milli_and_value_round_up(text: str, milli: int, value: int) -> None:
    """milli() and value() round up, as the scheduler's resource arithmetic needs."""
    assert quantity.milli(text) == milli
    assert quantity.value(text) == value


@pytest.mark.parametrize(("text", "valid"), [
    pytest.param("100m", True, id="valid"),
    pytest.param("lots", False, id="invalid"),
])
def test_is_valid(text: str, valid: bool) -> None:
    """is_valid says whether a string parses."""
    assert quantity.is_valid(text) is valid


@pytest.mark.parametrize(("milli", "text"), [
    pytest.param(250, "250m", id="fraction"),
    pytest.param(2000, "2", id="whole"),
    pytest.param(0, "0", id="zero"),
])
def test_format_milli(milli: int, text: str) -> None:
    """CPU amounts print as kubectl prints them."""
    assert quantity.format_milli(milli) == text


@pytest.mark.parametrize(("n", "text"), [
    pytest.param(128 * 2**20, "128Mi", id="mebi"),
    pytest.param(3 * 2**30, "3Gi", id="gibi"),
    pytest.param(3072, "3Ki", id="kibi"),
    pytest.param(1536, "1536", id="not-a-whole-kibi"),
    pytest.param(1000, "1000", id="not-binary"),
    pytest.param(0, "0", id="zero"),
])
def test_format_bytes(n: int, text: str) -> None:
    """Memory prints in the largest exact binary unit, or as plain bytes."""
    assert quantity.format_bytes(n) == text


@given(st.integers(min_value=0, max_value=2**50))
def test_format_bytes_round_trips(n: int) -> None:
    """Whatever format_bytes prints parses back to the same number of bytes."""
    assert quantity.value(quantity.format_bytes(n)) == n


@given(st.integers(min_value=0, max_value=10**9))
def test_format_milli_round_trips(m: int) -> None:
    """Whatever format_milli prints parses back to the same number of millis."""
    assert quantity.milli(quantity.format_milli(m)) == m
