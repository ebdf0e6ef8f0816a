"""A chaos run's setup calls wait out a brief unavailability (an etcd election) and nothing else."""

from __future__ import annotations

import asyncio

import pytest

from api.errors import ApiError, CertificateError, NotFoundError, UnavailableError
from chaos.run import steady


def calls_failing_with(*errors: ApiError):  # type: ignore[no-untyped-def]
    """A call that raises each of `errors` in turn, then answers "ok"; and the list of its calls."""
    seen: list[int] = []

    async def call() -> str:
        seen.append(1)
        if len(seen) <= len(errors):
            raise errors[len(seen) - 1]
        return "ok"

    return call, seen


@pytest.mark.parametrize(("errors", "answer", "calls"), [
    pytest.param((), "ok", 1, id="answers-at-once"),
    pytest.param((UnavailableError("etcd elected a new leader"),) * 2, "ok", 3, id="election-waited-out"),
    pytest.param((NotFoundError("no deployment web"),), NotFoundError, 1, id="not-found-at-once"),
    pytest.param((CertificateError("certificate expired"),), CertificateError, 1, id="bad-certificate-at-once"),
])
def test_only_unavailability_is_asked_again(errors: tuple[ApiError, ...], answer: object, calls: int) -> None:
    call, seen = calls_failing_with(*errors)
    if isinstance(answer, type):
        with pytest.raises(answer):
            asyncio.run(steady(call, patience=5))
    else:
        assert asyncio.run(steady(call, patience=5)) == answer
    assert len(seen) == calls


def test_an_api_that_stays_unavailable_is_reported_after_the_patience() -> None:
    call, seen = calls_failing_with(*(UnavailableError("no leader"),) * 100)
    with pytest.raises(UnavailableError, match="no leader"):
        asyncio.run(steady(call, patience=0.5))
    assert 2 <= len(seen) < 100
