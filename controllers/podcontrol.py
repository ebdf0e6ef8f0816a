"""Creating and deleting a controller's pods: slow-start batches, expectations, events (Kubernetes' PodControl).

Shared by the job, daemonset and statefulset controllers (and, for its batches,
the replicaset controller). Creations go out in batches of 1, 2, 4, ... so a
pod the apiserver refuses fails after one call, not a thousand; each batch is
expected before it is sent, and whatever was not created is taken off the
expectations again. A batch goes at once in CreateMany calls (Client.create_all:
each pod still admitted, validated and answered on its own), one Create per pod
against a server without it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from google.protobuf.message import Message

from api.errors import ApiError, ConflictError, ForbiddenError, NotFoundError
from api.pb import core_pb2
from client.api import Client
from client.informer import key_of
from client.retry import cached_first, retry_on_conflict
from controllers.base import gather_limited
from controllers.expectations import Expectations
from controllers.replicaset.plan import slow_start_batches

Failure = tuple[str, str]  # (reason, message) of a failed create or delete


async def create_pods(client: Client, owner: Message, pods: Sequence[core_pb2.Pod], *, key: str,
                      expectations: Expectations, recorder: Any, log: Any,
                      on_created: Callable[[core_pb2.Pod], None] | None = None) -> Failure | None:
    """Create `pods` in slow-start batches; stop at the first batch with a failure."""
    created = 0
    failure: Failure | None = None
    todo = list(pods)
    for size in slow_start_batches(len(todo)):
        batch, todo = todo[:size], todo[size:]
        expectations.expect_creations(key, len(batch))
        results = await client.create_all(batch)
        errors: list[BaseException] = []
        for r in results:
            if isinstance(r, asyncio.CancelledError):
                raise r
            if isinstance(r, BaseException):
                errors.append(r)
                continue
            created += 1
            recorder.normal(owner, "SuccessfulCreate", f"Created pod: {r.metadata.name}")
            if on_created is not None:
                on_created(r)
        if errors:
            expectations.lower_creations(key, len(errors))
            err = errors[0]
            message = err.message if isinstance(err, ApiError) else str(err)
            failure = ("FailedCreate", message)
            if not isinstance(err, ForbiddenError):
                recorder.warning(owner, "FailedCreate", f"Error creating: {message}")
            break
    log.info("pods_created", key=key, created=created, wanted=len(pods), failed=failure is not None)
    return failure


async def delete_pods(client: Client, owner: Message, victims: Sequence[core_pb2.Pod], *, key: str,
                      expectations: Expectations, recorder: Any, log: Any) -> Failure | None:
    """Delete `victims` (each only as the incarnation seen); gone or replaced ones count as deleted."""
    if not victims:
        return None
    expectations.expect_deletions(key, [key_of(p) for p in victims])
    results = await gather_limited([client.delete("pods", p.metadata.name, p.metadata.namespace,
                                                  uid=p.metadata.uid) for p in victims])
    failure: Failure | None = None
    for pod, r in zip(victims, results, strict=True):
        if isinstance(r, asyncio.CancelledError):
            raise r
        if isinstance(r, BaseException):
            expectations.deletion_observed(key, key_of(pod))
            if isinstance(r, (NotFoundError, ConflictError)):
                continue
            message = r.message if isinstance(r, ApiError) else str(r)
            failure = ("FailedDelete", message)
            recorder.warning(owner, "FailedDelete", f"Error deleting: {message}")
        else:
            recorder.normal(owner, "SuccessfulDelete", f"Deleted pod: {pod.metadata.name}")
    log.info("pods_deleted", key=key, count=len(victims), failed=failure is not None)
    return failure


async def remove_finalizer(client: Client, pods: Sequence[core_pb2.Pod], finalizer: str) -> list[BaseException]:
    """Take `finalizer` off each pod (read again on conflict); the errors other than a pod gone."""

    async def one(pod: core_pb2.Pod) -> None:
        def without(current: core_pb2.Pod) -> core_pb2.Pod | None:
            if current.metadata.uid != pod.metadata.uid or finalizer not in current.metadata.finalizers:
                return None
            new = core_pb2.Pod()
            new.CopyFrom(current)
            kept = [f for f in new.metadata.finalizers if f != finalizer]
            del new.metadata.finalizers[:]
            new.metadata.finalizers.extend(kept)
            return new

        fetch = lambda: client.get("pods", pod.metadata.name, pod.metadata.namespace)  # noqa: E731
        try:
            await retry_on_conflict(cached_first(pod, fetch), without, client.update,
                                    what=f"pod {pod.metadata.name}")
        except NotFoundError:
            pass

    results = await gather_limited([one(p) for p in pods])
    return [r for r in results if isinstance(r, BaseException)]
