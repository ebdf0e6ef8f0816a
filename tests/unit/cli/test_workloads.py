"""The workload verbs' pure parts: rollout status lines, targets, rollback source, images, durations."""

from __future__ import annotations

import click
import pytest

from api.pb import core_pb2
from cli.common import CliError
from cli.workloads import (
    apply_images,
    parse_duration,
    parse_target,
    previous_revision,
    status_message,
    template_of,
)
from controllers.deployment import status as st
from controllers.deployment import util

from ..controllers.builders import deployment, replicaset


def _d(replicas: int = 3, *, gen: int = 2, observed: int = 2, updated: int = 3, total: int = 3,
       available: int = 3) -> object:
    d = deployment(replicas=replicas, generation=gen)
    d.status.observed_generation = observed
    d.status.updated_replicas, d.status.replicas, d.status.available_replicas = updated, total, available
    return d


@pytest.mark.parametrize(("d", "message", "done"), [
    pytest.param(_d(observed=1), "Waiting for deployment spec update to be observed...", False, id="not-observed"),
    pytest.param(_d(updated=1), 'Waiting for deployment "web" rollout to finish: 1 out of 3 new replicas have been '
                                "updated...", False, id="updating"),
    pytest.param(_d(total=5), 'Waiting for deployment "web" rollout to finish: 2 old replicas are pending '
                              "termination...", False, id="old-pending"),
    pytest.param(_d(available=1), 'Waiting for deployment "web" rollout to finish: 1 of 3 updated replicas are '
                                  "available...", False, id="availability"),
    pytest.param(_d(), 'deployment "web" successfully rolled out', True, id="done"),
])
def test_status_message(d: object, message: str, done: bool) -> None:
    """Rollout status lines are kubectl's."""
    assert status_message(d) == (message, done)  # type: ignore[arg-type]


def test_status_message_deadline() -> None:
    """A rollout past its progress deadline is an error."""
    d = _d(updated=1)
    d.status.conditions.add(type=st.PROGRESSING, status="False", reason=st.TIMED_OUT)  # type: ignore[attr-defined]
    with pytest.raises(CliError, match='deployment "web" exceeded its progress deadline'):
        status_message(d)  # type: ignore[arg-type]


@pytest.mark.parametrize(("target", "name", "expect"), [
    pytest.param("deployment/web", None, ("Deployment", "web"), id="slash"),
    pytest.param("deploy", "web", ("Deployment", "web"), id="short-name"),
    pytest.param("deployments.apps/web", None, None, id="unknown-kind"),
    pytest.param("pod/web", None, None, id="wrong-kind"),
    pytest.param("deployment", None, None, id="no-name"),
])
def test_parse_target(target: str, name: str | None, expect: tuple[str, str] | None) -> None:
    """Targets are TYPE/NAME or TYPE NAME, and only deployments for rollout."""
    if expect is None:
        with pytest.raises(CliError):
            parse_target(target, name)
    else:
        assert parse_target(target, name) == expect


def test_previous_revision() -> None:
    """Undo goes to the second-newest revision, or to --to-revision."""
    rss = [replicaset("a", 0, revision=1), replicaset("b", 3, revision=3), replicaset("c", 0, revision=2)]
    assert previous_revision(rss, 0).metadata.name == "c"
    assert previous_revision(rss, 1).metadata.name == "a"
    with pytest.raises(CliError, match="unable to find specified revision 9 in history"):
        previous_revision(rss, 9)
    with pytest.raises(CliError):
        previous_revision(rss[1:2], 0)


def test_template_of_drops_hash() -> None:
    """A revision's template is its ReplicaSet's without the pod-template-hash label."""
    rs = replicaset("a", 1)
    rs.spec.template.metadata.labels[util.HASH_LABEL] = "abc"
    assert util.HASH_LABEL not in template_of(rs).metadata.labels


def test_apply_images() -> None:
    """Images are set by container name or `*`; an unknown name is an error."""
    spec = core_pb2.PodSpec()
    spec.containers.add(name="web", image="a")
    spec.containers.add(name="side", image="b")
    assert apply_images(spec, {"web": "x"}) and [c.image for c in spec.containers] == ["x", "b"]
    assert not apply_images(spec, {"web": "x"})
    assert apply_images(spec, {"*": "y"}) and {c.image for c in spec.containers} == {"y"}
    with pytest.raises(CliError, match='unable to find container named "nope"'):
        apply_images(spec, {"nope": "z"})


@pytest.mark.parametrize(("text", "seconds"), [("0", 0), ("45", 45), ("30s", 30), ("2m", 120), ("1m30s", 90),
                                               ("1h", 3600), ("500ms", 0.5), ("1.5s", 1.5)])
def test_parse_duration(text: str, seconds: float) -> None:
    """--timeout takes kubectl durations."""
    assert parse_duration(text) == pytest.approx(seconds)


def test_parse_duration_rejects_garbage() -> None:
    """A malformed duration is a usage error."""
    with pytest.raises(click.BadParameter):
        parse_duration("5x")
