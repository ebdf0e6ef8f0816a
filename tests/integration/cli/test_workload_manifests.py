"""The documentation's Job, CronJob, DaemonSet, StatefulSet (with its headless Service) and PodDisruptionBudget
apply unchanged, read back with the same content, and show kubectl's columns in `get`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from .conftest import DOCS, Kubelite
from .test_docs_manifests import _docs, _ref, assert_contains

WORKLOADS = DOCS / "workloads"
FILES = sorted(WORKLOADS.glob("*.yaml"))


def test_the_manifests_are_here() -> None:
    """The pi Job, the hello CronJob, the fluentd DaemonSet, the web StatefulSet and a budget are kept here."""
    assert {p.stem for p in FILES} >= {"job", "cronjob", "daemonset", "web",
                                       "zookeeper-pod-disruption-budget-minavailable"}
    web = _docs(WORKLOADS / "web.yaml")
    assert [d["kind"] for d in web] == ["Service", "StatefulSet"]
    assert web[1]["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "www"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
async def test_apply_and_read_back(kubelite: Kubelite, path: Path) -> None:
    """`apply -f` creates every object of the file unchanged; `get -o yaml/json` shows every field it sets."""
    result = await kubelite("apply", "-f", str(path))
    assert result.code == 0, result.err
    assert result.err == ""
    for doc in _docs(path):
        resource, name = _ref(doc)
        ns = doc["metadata"].get("namespace", "default")
        got = yaml.safe_load((await kubelite("get", resource, name, "-n", ns, "-o", "yaml")).out)
        assert_contains(got, doc)
        assert_contains(json.loads((await kubelite("get", resource, name, "-n", ns, "-o", "json")).out), doc)


async def test_server_defaults_and_columns(kubelite: Kubelite) -> None:
    """The server fills Kubernetes' defaults (the Job's selector from its uid, parallelism, history limits, update
    strategies) and `get` prints kubectl's columns for each kind."""
    assert (await kubelite("apply", "-f", str(WORKLOADS))).code == 0
    job = json.loads((await kubelite("get", "job", "pi", "-o", "json")).out)
    uid = job["metadata"]["uid"]
    assert job["spec"]["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
    labels = job["spec"]["template"]["metadata"]["labels"]
    assert labels["batch.kubernetes.io/job-name"] == "pi" and labels["controller-uid"] == uid
    assert (job["spec"]["parallelism"], job["spec"]["completions"], job["spec"]["completionMode"]) == \
        (1, 1, "NonIndexed")
    cj = json.loads((await kubelite("get", "cj", "hello", "-o", "json")).out)
    assert (cj["spec"]["concurrencyPolicy"], cj["spec"]["successfulJobsHistoryLimit"],
            cj["spec"]["failedJobsHistoryLimit"], cj["spec"]["suspend"]) == ("Allow", 3, 1, False)
    ds = json.loads((await kubelite("get", "ds", "fluentd-elasticsearch", "-n", "kube-system", "-o", "json")).out)
    assert ds["spec"]["updateStrategy"] == {"type": "RollingUpdate",
                                            "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}
    sts = json.loads((await kubelite("get", "sts", "web", "-o", "json")).out)
    assert sts["spec"]["podManagementPolicy"] == "OrderedReady"
    assert sts["spec"]["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain", "whenScaled": "Retain"}
    table = (await kubelite("get", "jobs,cronjobs,statefulsets,pdb")).out.splitlines()
    assert table[0].split() == ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"]
    assert table[1].split()[:3] == ["job.batch/pi", "Running", "0/1"]
    header = next(line for line in table if line.startswith("NAME") and "SCHEDULE" in line)
    assert header.split() == ["NAME", "SCHEDULE", "TIMEZONE", "SUSPEND", "ACTIVE", "LAST", "SCHEDULE", "AGE"]
    row = next(line for line in table if line.startswith("cronjob.batch/hello"))
    assert row.split()[1:7] == ["*", "*", "*", "*", "*", "<none>"]
    assert any(line.split()[:2] == ["statefulset.apps/web", "0/2"] for line in table)
    assert any(line.split()[:4] == ["poddisruptionbudget.policy/zk-pdb", "2", "N/A", "0"] for line in table)
    ds_table = (await kubelite("get", "ds", "-n", "kube-system")).out.splitlines()
    assert ds_table[0].split() == ["NAME", "DESIRED", "CURRENT", "READY", "UP-TO-DATE", "AVAILABLE", "NODE",
                                   "SELECTOR", "AGE"]
    assert ds_table[1].split()[:7] == ["fluentd-elasticsearch", "0", "0", "0", "0", "0", "<none>"]


async def test_invalid_workloads_are_refused_naming_the_field(kubelite: Kubelite, tmp_path: Path) -> None:
    """A Job with restartPolicy Always, a CronJob with a bad schedule, a budget with both bounds: each is refused
    before anything is written, naming its field."""
    bad = tmp_path / "bad.yaml"
    cases = [
        ({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"},
          "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox"}]}}}},
         'spec.template.spec.restartPolicy: Unsupported value: \'Always\': supported values: "OnFailure", "Never"'),
        ({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "c"},
          "spec": {"schedule": "every minute", "jobTemplate": {"spec": {"template": {"spec": {
              "restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}}}}},
         "spec.schedule: Invalid value: 'every minute'"),
        ({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "p"},
          "spec": {"minAvailable": 1, "maxUnavailable": 1, "selector": {"matchLabels": {"a": "b"}}}},
         "spec: Invalid value: minAvailable and maxUnavailable cannot be both set"),
    ]
    for doc, message in cases:
        bad.write_text(yaml.safe_dump(doc))
        result = await kubelite("apply", "-f", str(bad))
        assert result.code == 1 and message in result.err, result.err
