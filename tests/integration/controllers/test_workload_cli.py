"""The workload commands as a user runs them, against a real apiserver, controllers, scheduler and hollow nodes:
`create job` (from flags and from a CronJob), `wait --for=condition=complete`, `describe`, and `rollout
status|history|undo` for DaemonSets and StatefulSets. (`logs job/NAME` needs a real kubelet: tests/e2e.)"""

from __future__ import annotations

import asyncio
import subprocess
from typing import Any

import pytest

from client.api import Client
from kubelet.runtime.fake import ImageBehavior

from .conftest import KUBELITE_ENV, KUBELITE_PATH, Running, create, start_hollow, start_manager, start_scheduler

PI = "localhost:5000/kubelite/busybox:pi"


@pytest.fixture
async def cluster3(apiserver: Any, running: Running) -> None:
    await start_manager(running, apiserver.address, job_backoff=0.3)
    await start_scheduler(running, apiserver.address)
    await start_hollow(running, apiserver.address, 3, behaviors={PI: ImageBehavior(exit_code=0, run_seconds=0.3)})


def kubelite(address: str, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run([KUBELITE_PATH, "--server", address, *args], capture_output=True, text=True,
                          timeout=timeout, env=KUBELITE_ENV, check=False)


async def run(address: str, *args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(kubelite, address, *args)


async def test_create_job_wait_and_logs(client: Client, cluster3: None, apiserver: Any) -> None:
    """`create job pi --image ... -- cmd` makes kubectl's Job; `wait --for=condition=complete` returns once it is
    Complete; `describe job` counts the pods."""
    made = await run(apiserver.address, "create", "job", "pi", "--image", PI, "--", "perl", "-wle", "print 1")
    assert (made.returncode, made.stdout) == (0, "job.batch/pi created\n"), made.stderr
    job = await client.get("jobs", "pi", "default")
    c = job.spec.template.spec.containers[0]
    assert (c.name, c.image, list(c.command), job.spec.template.spec.restart_policy) == \
        ("pi", PI, ["perl", "-wle", "print 1"], "Never")
    waited = await run(apiserver.address, "wait", "--for=condition=complete", "job/pi", "--timeout", "60s")
    assert (waited.returncode, waited.stdout) == (0, "job.batch/pi condition met\n"), waited.stderr
    described = await run(apiserver.address, "describe", "job", "pi")
    assert "Pods Statuses:        0 Active (0 Ready) / 1 Succeeded / 0 Failed" in described.stdout
    table = await run(apiserver.address, "get", "jobs")
    assert table.stdout.splitlines()[1].split()[:3] == ["pi", "Complete", "1/1"]


async def test_create_job_refusals(client: Client, cluster3: None, apiserver: Any) -> None:
    """Bad `create job` input is one line and exit 1, and nothing is written."""
    for args, message in ((("create", "job", "x"), "either --image or --from must be specified"),
                          (("create", "job", "x", "--image", "a", "--from", "cronjob/c"), "mutually exclusive"),
                          (("create", "job", "x", "--from", "deploy/web"), "from must be an existing cronjob"),
                          (("create", "job", "Bad_Name", "--image", "a"), 'Job "Bad_Name" is invalid: metadata.name'),
                          (("create", "job", "x", "--from", "cronjob/nope"), 'cronjobs "nope" not found')):
        result = await run(apiserver.address, *args)
        assert result.returncode == 1 and message in result.stderr, (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert await client.list_all("jobs", "default") == []


async def test_create_job_from_cronjob(client: Client, cluster3: None, apiserver: Any) -> None:
    """`create job once --from=cronjob/hello` runs the CronJob's template now, owned by the CronJob and marked
    manual, while the CronJob keeps its schedule."""
    await create(client, f"""
apiVersion: batch/v1
kind: CronJob
metadata: {{name: hello, namespace: default}}
spec:
  schedule: "0 0 1 1 *"
  jobTemplate:
    metadata: {{labels: {{team: a}}}}
    spec:
      template:
        spec:
          restartPolicy: OnFailure
          containers: [{{name: hello, image: "{PI}"}}]
""")
    made = await run(apiserver.address, "create", "job", "once", "--from=cronjob/hello")
    assert (made.returncode, made.stdout) == (0, "job.batch/once created\n"), made.stderr
    job = await client.get("jobs", "once", "default")
    ref = job.metadata.owner_references[0]
    assert (ref.kind, ref.name, ref.controller) == ("CronJob", "hello", True)
    assert job.metadata.annotations["cronjob.kubernetes.io/instantiate"] == "manual"
    assert job.metadata.labels["team"] == "a"
    waited = await run(apiserver.address, "wait", "--for=condition=complete", "job/once", "--timeout", "60s")
    assert waited.returncode == 0, waited.stderr


async def test_rollout_for_daemonsets_and_statefulsets(client: Client, cluster3: None, apiserver: Any) -> None:
    """`rollout status` follows a DaemonSet and a StatefulSet to the end; `set`-style edits make revisions that
    `rollout history` lists and `rollout undo` goes back to."""
    await create(client, """
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent, namespace: default}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec:
      terminationGracePeriodSeconds: 1
      containers: [{name: c, image: "busybox:1"}]
""")
    await create(client, """
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: web, namespace: default}
spec:
  serviceName: nginx
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers: [{name: c, image: "nginx:1"}]
""")
    ds = await run(apiserver.address, "rollout", "status", "daemonset/agent", "--timeout", "60s")
    assert ds.returncode == 0 and ds.stdout.splitlines()[-1] == 'daemon set "agent" successfully rolled out', ds
    sts = await run(apiserver.address, "rollout", "status", "sts/web", "--timeout", "60s")
    assert sts.returncode == 0 and sts.stdout.splitlines()[-1].startswith(
        "statefulset rolling update complete 2 pods at revision web-"), sts
    for kind, name, image in (("daemonsets", "agent", "busybox:2"), ("statefulsets", "web", "nginx:2")):
        obj = await client.get(kind, name, "default")
        obj.metadata.annotations["kubernetes.io/change-cause"] = f"image {image}"
        obj.spec.template.spec.containers[0].image = image
        await client.update(obj)
        done = await run(apiserver.address, "rollout", "status", f"{kind}/{name}", "--timeout", "60s")
        assert done.returncode == 0, done.stderr
        history = await run(apiserver.address, "rollout", "history", f"{kind}/{name}")
        rows = [line.split(None, 1) for line in history.stdout.splitlines()[2:]]
        assert rows == [["1", "<none>"], ["2", f"image {image}"]], history.stdout
        shown = await run(apiserver.address, "rollout", "history", f"{kind}/{name}", "--revision", "2")
        assert f"Image:\t{image}" in shown.stdout
        undone = await run(apiserver.address, "rollout", "undo", f"{kind}/{name}")
        assert undone.returncode == 0 and undone.stdout.strip().endswith(f"/{name} rolled back"), undone.stderr
        back = await client.get(kind, name, "default")
        assert back.spec.template.spec.containers[0].image in ("busybox:1", "nginx:1")
        again = await run(apiserver.address, "rollout", "undo", f"{kind}/{name}", "--to-revision", "3")
        assert "skipped rollback (current template already matches revision 3)" in again.stdout, again
    pdb = await run(apiserver.address, "rollout", "status", "job/x")
    assert pdb.returncode == 1 and "this command works on deployments, daemonsets, statefulsets only" in pdb.stderr
