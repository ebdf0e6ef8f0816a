"""Kubernetes IntOrString values, stored as strings ("8080", "http", "25%")."""

from __future__ import annotations

import math


def is_int(value: str) -> bool:
    return value.lstrip("-").isdigit()


def port_value(value: str) -> int | str:
    """A target port: its number, or the container port name to resolve."""
    return int(value) if is_int(value) else value


def scaled(value: str, total: int, *, round_up: bool) -> int:
    """An absolute count or a percentage of `total`, rounded as Kubernetes rounds.

    maxSurge rounds up and maxUnavailable rounds down (GetScaledValueFromIntOrPercent).
    """
    if value == "":
        return 0
    if value.endswith("%"):
        pct = int(value[:-1])
        exact = pct * total / 100
        return math.ceil(exact) if round_up else math.floor(exact)
    return int(value)


def is_valid_percent_or_int(value: str) -> bool:
    if value.endswith("%"):
        return value[:-1].isdigit()
    return is_int(value)
