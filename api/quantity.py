"""Kubernetes quantities ("500m", "1.5", "128Mi", "1G", "2e3") parsed as Kubernetes parses them.

The grammar (k8s.io/apimachinery resource.Quantity): a signed decimal number, then one suffix:
binary (Ki Mi Gi Ti Pi Ei), decimal (n u m "" k M G T P E) or an exponent (e or E and a signed
integer; "1E" alone is exa).
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation

_RE = re.compile(r"([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?[0-9]+)?")

_SYNTAX = "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"

_SUFFIX = {
    None: Decimal(1),
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("0.001"),
    "k": Decimal(10) ** 3,
    "M": Decimal(10) ** 6,
    "G": Decimal(10) ** 9,
    "T": Decimal(10) ** 12,
    "P": Decimal(10) ** 15,
    "E": Decimal(10) ** 18,
    "Ki": Decimal(2) ** 10,
    "Mi": Decimal(2) ** 20,
    "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50,
    "Ei": Decimal(2) ** 60,
}


class QuantityError(ValueError):
    pass


def parse(text: str | int | float) -> Decimal:
    """The exact value of a quantity; raises QuantityError naming the syntax."""
    if isinstance(text, bool):
        raise QuantityError(_SYNTAX)
    if isinstance(text, int | float):
        text = repr(text) if isinstance(text, float) else str(text)
    m = _RE.fullmatch(text.strip(" "))  # spaces only: a newline or tab is no part of a quantity
    if not m or len(text) > 64:
        raise QuantityError(_SYNTAX)
    number, suffix = m.group(1), m.group(2)
    try:
        value = Decimal(number)
        if suffix and suffix not in _SUFFIX:  # an exponent ("2e3"); "E" and "Ei" are suffixes
            exp = int(suffix[1:])
            if abs(exp) > 30:
                raise QuantityError("quantity exponent out of range")
            return value * (Decimal(10) ** exp)
        return value * _SUFFIX[suffix]
    except InvalidOperation as e:
        raise QuantityError(str(e)) from e


def is_valid(text: str) -> bool:
    try:
        parse(text)
    except QuantityError:
        return False
    return True


def milli(text: str | int | float) -> int:
    """Value in thousandths, rounded up (cpu "250m" -> 250, "1" -> 1000)."""
    return math.ceil(parse(text) * 1000)


def value(text: str | int | float) -> int:
    """Whole value rounded up (memory "128Mi" -> 134217728)."""
    return math.ceil(parse(text))


def format_milli(m: int) -> str:
    """A cpu amount in the form kubectl prints ("250m", "2")."""
    return f"{m // 1000}" if m % 1000 == 0 else f"{m}m"


def format_bytes(n: int) -> str:
    """A memory amount in the largest exact binary unit ("128Mi")."""
    for suffix, factor in (("Ei", 2**60), ("Pi", 2**50), ("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
        if n and n % factor == 0:
            return f"{n // factor}{suffix}"
    return str(n)
