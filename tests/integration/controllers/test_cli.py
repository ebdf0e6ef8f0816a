"""The workload verbs end to end: `kubelite rollout ...`, `set image`, `get events`, `describe`, as subprocesses."""

from __future__ import annotations

import asyncio
import subprocess
from typing import Any

from client.api import Client
from controllers.deployment import util
from controllers.manager import ControllerManager

from .conftest import (
    KUBELITE_ENV,
    KUBELITE_PATH,
    Running,
    create,
    deployment_yaml,
    eventually,
    start_hollow,
    start_scheduler,
)
from .test_deployment import kubelite, replicasets, rollout_done


async def test_rollout_status_follows_live(client: Client, manager: ControllerManager, apiserver: Any,
                                           running: Running) -> None:
    """`rollout status` prints kubectl's progress lines as they change and exits 0 once rolled out."""
    await create(client, deployment_yaml(replicas=3))
    proc = await asyncio.create_subprocess_exec(
        KUBELITE_PATH, "rollout", "status", "deployment/web", "--server", apiserver.address,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=KUBELITE_ENV)
    first = await asyncio.wait_for(proc.stdout.readline(), 10)  # type: ignore[union-attr]
    assert first.decode().startswith('Waiting for deployment "web" rollout to finish: 0 of 3 updated replicas are '
                                     'available...') or first.decode().startswith(
        'Waiting for deployment "web" rollout to finish: 0 out of 3 new replicas have been updated...')
    await start_scheduler(running, apiserver.address)  # now nodes appear and the pods can run
    await start_hollow(running, apiserver.address, 2)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    lines = [first.decode().strip(), *out.decode().strip().splitlines()]
    assert lines[-1] == 'deployment "web" successfully rolled out'
    assert len(lines) == len(set(lines))  # a line is printed when it changes, not on every event


async def test_rollout_status_timeout(client: Client, manager: ControllerManager, apiserver: Any) -> None:
    """With --timeout, `rollout status` gives up with an error and a non-zero exit."""
    await create(client, deployment_yaml(replicas=1))
    result = await asyncio.to_thread(kubelite, apiserver.address, "rollout", "status", "deploy", "web",
                                     "--timeout", "1s")
    assert result.returncode == 1 and result.stderr.strip() == "error: timed out waiting for the condition"
    missing = await asyncio.to_thread(kubelite, apiserver.address, "rollout", "status", "deployment/nope",
                                      "--timeout", "5s")
    assert missing.returncode == 1 and 'deployments.apps "nope" not found' in missing.stderr


async def test_set_image_history_undo_to_revision(client: Client, manager: ControllerManager, apiserver: Any) -> None:
    """`set image` makes a new revision, `rollout history` lists revisions, `undo --to-revision` goes back to one."""
    d = await create(client, deployment_yaml(replicas=0))
    await eventually(lambda: rollout_done(client))
    for image in ("busybox:2", "busybox:3"):
        r = await asyncio.to_thread(kubelite, apiserver.address, "set", "image", "deployment/web", f"web={image}")
        assert r.returncode == 0 and r.stdout.strip() == "deployment.apps/web image updated", r.stderr
        await eventually(lambda image=image: _image_rolled(client, image))
    bad = await asyncio.to_thread(kubelite, apiserver.address, "set", "image", "deployment/web", "nope=x")
    assert bad.returncode == 1 and 'unable to find container named "nope"' in bad.stderr

    history = await asyncio.to_thread(kubelite, apiserver.address, "rollout", "history", "deployment/web")
    assert history.returncode == 0
    assert history.stdout.splitlines()[1:] == ["REVISION   CHANGE-CAUSE", "1          <none>", "2          <none>",
                                               "3          <none>"]
    one = await asyncio.to_thread(kubelite, apiserver.address, "rollout", "history", "deployment/web",
                                  "--revision", "2")
    assert "deployment.apps/web with revision #2" in one.stdout and "busybox:2" in one.stdout

    undo = await asyncio.to_thread(kubelite, apiserver.address, "rollout", "undo", "deployment/web",
                                   "--to-revision", "1")
    assert undo.returncode == 0 and undo.stdout.strip() == "deployment.apps/web rolled back"
    await eventually(lambda: _image_rolled(client, deployment_image()))
    revs = sorted(util.revision(rs) for rs in await replicasets(client, d))
    assert revs == [2, 3, 4]
    again = await asyncio.to_thread(kubelite, apiserver.address, "rollout", "undo", "deployment/web",
                                    "--to-revision", "4")
    assert again.returncode == 0 and "skipped rollback" in again.stdout
    missing = await asyncio.to_thread(kubelite, apiserver.address, "rollout", "undo", "deployment/web",
                                      "--to-revision", "9")
    assert missing.returncode == 1 and "unable to find specified revision 9 in history" in missing.stderr


def deployment_image() -> str:
    return "localhost:5000/kubelite/busybox:1.35"


async def _image_rolled(client: Client, image: str) -> bool:
    d = await rollout_done(client)
    return d is not None and d.spec.template.spec.containers[0].image == image


async def test_pause_resume_restart(client: Client, manager: ControllerManager, apiserver: Any) -> None:
    """pause/resume toggle spec.paused (an error if already so); restart stamps the template and makes a revision."""
    d = await create(client, deployment_yaml(replicas=0))
    await eventually(lambda: rollout_done(client))
    r = await asyncio.to_thread(kubelite, apiserver.address, "rollout", "pause", "deployment/web")
    assert r.stdout.strip() == "deployment.apps/web paused"
    r = await asyncio.to_thread(kubelite, apiserver.address, "rollout", "pause", "deployment/web")
    assert r.returncode == 1 and 'deployments.apps "web" is already paused' in r.stderr
    r = await asyncio.to_thread(kubelite, apiserver.address, "rollout", "restart", "deployment/web")
    assert r.returncode == 1 and "can't restart paused deployment" in r.stderr
    r = await asyncio.to_thread(kubelite, apiserver.address, "rollout", "undo", "deployment/web")
    assert r.returncode == 1 and "cannot rollback a paused deployment" in r.stderr
    r = await asyncio.to_thread(kubelite, apiserver.address, "rollout", "resume", "deployment/web")
    assert r.stdout.strip() == "deployment.apps/web resumed"
    r = await asyncio.to_thread(kubelite, apiserver.address, "rollout", "restart", "deployment/web")
    assert r.returncode == 0 and r.stdout.strip() == "deployment.apps/web restarted"
    cur = await client.get("deployments", "web", "default")
    assert util.RESTARTED_AT in cur.spec.template.metadata.annotations
    await eventually(lambda: _n(client, d, 2), what="a new revision for the restart")


async def _n(client: Client, d: Any, n: int) -> bool:
    return len(await replicasets(client, d)) == n


async def test_events_in_get_and_describe(client: Client, manager: ControllerManager, apiserver: Any) -> None:
    """Controller actions show up in `get events` and in `describe` of the objects they concern."""
    await create(client, deployment_yaml(replicas=2))
    await eventually(lambda: _has_events(client))
    events = await asyncio.to_thread(kubelite, apiserver.address, "get", "events")
    assert events.returncode == 0
    assert "ScalingReplicaSet" in events.stdout and "SuccessfulCreate" in events.stdout
    assert "deployment/web" in events.stdout
    described = await asyncio.to_thread(kubelite, apiserver.address, "describe", "deployment", "web")
    assert "ScalingReplicaSet" in described.stdout and "deployment-controller" in described.stdout
    rs = (await client.list_all("replicasets", "default"))[0]
    described = await asyncio.to_thread(kubelite, apiserver.address, "describe", "rs", rs.metadata.name)
    assert "SuccessfulCreate" in described.stdout and "replicaset-controller" in described.stdout


async def _has_events(client: Client) -> bool:
    reasons = {e.reason for e in await client.list_all("events", "default")}
    return {"ScalingReplicaSet", "SuccessfulCreate"} <= reasons


def test_controller_manager_rejects_bad_flags() -> None:
    """Unknown controllers and non-positive periods are usage errors (exit 2), reported on one line."""
    r = subprocess.run([KUBELITE_PATH, "controller-manager", "--controllers", "*,nope"], capture_output=True,
                       text=True, env=KUBELITE_ENV, timeout=30, check=False)
    assert r.returncode == 2 and "unknown controller 'nope'" in r.stderr
    r = subprocess.run([KUBELITE_PATH, "controller-manager", "--node-monitor-grace-period", "0"],
                       capture_output=True, text=True, env=KUBELITE_ENV, timeout=30, check=False)
    assert r.returncode == 2 and "must be positive" in r.stderr
