"""The client's coalescer: which calls go alone, which go together, and what each caller gets back."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from api.errors import InternalError, InvalidError, UnavailableError, UnimplementedError
from client.coalesce import Coalescer


class Server:
    """Answers items after `delay`; records each call as ("one", item) or ("many", items)."""

    def __init__(self, *, delay: float = 0.01, batch: bool = True, fail_many: Exception | None = None) -> None:
        self.delay, self.batch, self.fail_many = delay, batch, fail_many
        self.calls: list[tuple[str, object]] = []

    def answer(self, item: str) -> str | Exception:
        return InvalidError(f"{item}: bad") if item.startswith("bad") else item.upper()

    async def one(self, item: str) -> str:
        self.calls.append(("one", item))
        await asyncio.sleep(self.delay)
        answer = self.answer(item)
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def many(self, items: Sequence[str]) -> list[str | Exception]:
        self.calls.append(("many", list(items)))
        await asyncio.sleep(self.delay)
        if not self.batch:
            raise UnimplementedError("CreateMany: unknown method")
        if self.fail_many is not None:
            raise self.fail_many
        return [self.answer(i) for i in items]


async def _all(c: Coalescer[str, str], items: list[str]) -> list[str | BaseException]:
    return await asyncio.gather(*(c(i) for i in items), return_exceptions=True)


@pytest.mark.parametrize(("limit", "items", "calls"), [
    # alone, nothing else in flight: one call of its own
    (2, ["a"], [("one", "a")]),
    # two fit the limit alone; the rest wait for the first to return and go together
    (2, ["a", "b", "c", "d", "e"], [("one", "a"), ("one", "b"), ("many", ["c", "d", "e"])]),
    # with a limit of 1 only the first goes alone
    (1, ["a", "b", "c"], [("one", "a"), ("many", ["b", "c"])]),
    # a single waiting item goes as a plain call
    (2, ["a", "b", "c"], [("one", "a"), ("one", "b"), ("one", "c")]),
])
async def test_which_calls_go_together(limit: int, items: list[str], calls: list[tuple[str, object]]) -> None:
    server = Server()
    c = Coalescer(server.one, server.many, limit=limit)
    assert await _all(c, items) == [i.upper() for i in items]
    assert server.calls == calls
    assert c.calls == len(calls)


async def test_each_item_gets_its_own_error() -> None:
    server = Server()
    c = Coalescer(server.one, server.many, limit=1)
    answers = await _all(c, ["a", "b", "bad1", "c"])
    assert answers[:2] == ["A", "B"] and answers[3] == "C"
    assert isinstance(answers[2], InvalidError) and str(answers[2]) == "bad1: bad"
    assert server.calls[1][0] == "many"


async def test_a_failed_batch_call_fails_each_of_its_items() -> None:
    server = Server(fail_many=UnavailableError("apiserver went away"))
    c = Coalescer(server.one, server.many, limit=1)
    answers = await _all(c, ["a", "b", "c"])
    assert answers[0] == "A"
    assert all(isinstance(a, UnavailableError) for a in answers[1:])


async def test_a_batch_answered_with_the_wrong_count_fails_each_of_its_items() -> None:
    server = Server()

    async def short(items: Sequence[str]) -> list[str | Exception]:
        return (await server.many(items))[:-1]

    c = Coalescer(server.one, short, limit=1)
    answers = await asyncio.wait_for(_all(c, ["a", "b", "c"]), 2)
    assert answers[0] == "A"
    assert all(isinstance(a, InternalError) and "batch of 2 was answered with 1" in str(a) for a in answers[1:])


async def test_an_older_server_gets_one_call_per_item_from_then_on() -> None:
    server = Server(batch=False)
    c = Coalescer(server.one, server.many, limit=1)
    assert await _all(c, ["a", "b", "c"]) == ["A", "B", "C"]
    assert not c.batching
    server.calls.clear()
    assert await _all(c, ["d", "e", "f"]) == ["D", "E", "F"]
    assert [kind for kind, _ in server.calls] == ["one", "one", "one"]


@pytest.mark.parametrize(("max_items", "max_bytes", "batches"), [
    (2, 1000, [["b", "c"], ["d", "e"]]),
    (10, 2, [["b", "c"], ["d", "e"]]),  # each item counts 1 byte here
    (10, 1000, [["b", "c", "d", "e"]]),
])
async def test_a_batch_stays_within_its_bounds(max_items: int, max_bytes: int, batches: list[list[str]]) -> None:
    server = Server()
    c = Coalescer(server.one, server.many, limit=1, max_items=max_items, max_bytes=max_bytes, size=len)
    assert await _all(c, ["a", "b", "c", "d", "e"]) == ["A", "B", "C", "D", "E"]
    assert [items for kind, items in server.calls if kind == "many"] == batches


async def test_a_caller_that_gives_up_before_its_batch_leaves_is_never_sent() -> None:
    server = Server(delay=0.05)
    c = Coalescer(server.one, server.many, limit=1)
    first = asyncio.ensure_future(c("a"))
    await asyncio.sleep(0)
    waiting = asyncio.ensure_future(c("b"))
    kept = asyncio.ensure_future(c("c"))
    await asyncio.sleep(0.01)
    waiting.cancel()
    assert await first == "A" and await kept == "C"
    assert waiting.cancelled()
    assert server.calls == [("one", "a"), ("one", "c")]


async def test_close_cancels_what_waits_and_what_is_in_flight() -> None:
    server = Server(delay=10)
    c = Coalescer(server.one, server.many, limit=1)
    first = asyncio.ensure_future(c("a"))
    await asyncio.sleep(0)
    waiting = [asyncio.ensure_future(c(i)) for i in "bc"]
    await asyncio.sleep(0)
    await c.close()
    for task in waiting:
        with pytest.raises(asyncio.CancelledError):
            await task
    first.cancel()


@pytest.mark.parametrize(("items", "max_items", "calls"), [
    # known together: split within the bounds, every batch sent at once
    (["a", "b", "c", "d", "e"], 2, [("many", ["a", "b"]), ("many", ["c", "d"]), ("one", "e")]),
    (["a", "b", "bad1"], 250, [("many", ["a", "b", "bad1"])]),
    (["a"], 250, [("one", "a")]),
    ([], 250, []),
])
async def test_items_known_together_go_at_once_within_the_bounds(items: list[str], max_items: int,
                                                                  calls: list[tuple[str, object]]) -> None:
    server = Server(delay=0.2)
    c = Coalescer(server.one, server.many, limit=1, max_items=max_items)
    start = asyncio.get_running_loop().time()
    answers = await c.send_all(items)
    # One round trip, not one per batch (0.6 s); the margin allows for a busy machine's stalls.
    assert asyncio.get_running_loop().time() - start < 0.35
    assert [a if isinstance(a, str) else str(a) for a in answers] == \
        [("bad1: bad" if i.startswith("bad") else i.upper()) for i in items]
    assert server.calls == calls
    assert c.calls == len(calls)


async def test_items_known_together_against_an_older_server_or_a_failed_call() -> None:
    old = Server(batch=False)
    c = Coalescer(old.one, old.many, limit=1)
    assert await c.send_all(["a", "b"]) == ["A", "B"]
    assert not c.batching and [kind for kind, _ in old.calls] == ["many", "one", "one"]
    down = Server(fail_many=UnavailableError("apiserver went away"))
    answers = await Coalescer(down.one, down.many).send_all(["a", "b"])
    assert all(isinstance(a, UnavailableError) for a in answers)
