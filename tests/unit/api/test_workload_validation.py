"""Validation of Jobs, CronJobs, DaemonSets, StatefulSets, PodDisruptionBudgets and ControllerRevisions: every
error names its field, as Kubernetes words it."""

from __future__ import annotations

from typing import Any

import pytest

from api import convert, defaults, kinds, validation

TEMPLATE = {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
JOB_TEMPLATE = {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}
SELECTOR = {"matchLabels": {"app": "web"}}


def errors(kind: str, spec: dict[str, Any], name: str = "x", **top: Any) -> list[str]:
    k = kinds.lookup(kind)
    obj = kinds.unwrap(convert.manifest_to_object({"apiVersion": k.api_version, "kind": kind,
                                                   "metadata": {"name": name}, **({"spec": spec} if spec else {}),
                                                   **top}))
    defaults.apply(obj)
    return [str(e) for e in validation.validate(obj)]


@pytest.mark.parametrize(("kind", "spec", "message"), [
    pytest.param("Job", {"template": JOB_TEMPLATE}, None, id="job-ok"),
    pytest.param("Job", {"template": {"spec": {"containers": [{"name": "c", "image": "b"}]}}},
                 "spec.template.spec.restartPolicy: Unsupported value: 'Always'", id="job-restart-always"),
    pytest.param("Job", {"template": JOB_TEMPLATE, "backoffLimit": -1},
                 "spec.backoffLimit: Invalid value: -1: must be greater than or equal to 0", id="job-backoff"),
    pytest.param("Job", {"template": JOB_TEMPLATE, "activeDeadlineSeconds": 0},
                 "spec.activeDeadlineSeconds: Invalid value: 0: must be greater than 0", id="job-deadline"),
    pytest.param("Job", {"template": JOB_TEMPLATE, "completionMode": "Indexed", "parallelism": 2},
                 "spec.completions: Required value: when completion mode is Indexed", id="indexed-needs-completions"),
    pytest.param("Job", {"template": JOB_TEMPLATE, "completionMode": "Odd"},
                 "spec.completionMode: Unsupported value: 'Odd'", id="completion-mode"),
    pytest.param("Job", {"template": JOB_TEMPLATE, "manualSelector": True},
                 "spec.selector: Required value", id="manual-selector-needs-one"),
    pytest.param("Job", {"template": {"spec": {"restartPolicy": "OnFailure",
                                               "containers": [{"name": "c", "image": "b"}]}},
                         "podFailurePolicy": {"rules": [{"action": "FailJob",
                                                         "onExitCodes": {"operator": "In", "values": [0]}}]}},
                 "spec.template.spec.restartPolicy: Invalid value: 'OnFailure': only \"Never\" is supported",
                 id="failure-policy-needs-never"),
    pytest.param("Job", {"template": JOB_TEMPLATE,
                         "podFailurePolicy": {"rules": [{"action": "FailJob",
                                                         "onExitCodes": {"operator": "In", "values": [3, 1]}}]}},
                 "spec.podFailurePolicy.rules[0].onExitCodes.values: Invalid value: [3, 1]: must be ordered",
                 id="failure-policy-ordered"),
    pytest.param("Job", {"template": JOB_TEMPLATE,
                         "podFailurePolicy": {"rules": [{"action": "Restart",
                                                         "onPodConditions": [{"type": "X", "status": "True"}]}]}},
                 "spec.podFailurePolicy.rules[0].action: Unsupported value: 'Restart'", id="failure-policy-action"),
    pytest.param("CronJob", {"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": JOB_TEMPLATE}}},
                 None, id="cronjob-ok"),
    pytest.param("CronJob", {"schedule": "@daily", "timeZone": "Europe/Paris",
                             "jobTemplate": {"spec": {"template": JOB_TEMPLATE}}}, None, id="cronjob-macro-zone"),
    pytest.param("CronJob", {"schedule": "61 * * * *", "jobTemplate": {"spec": {"template": JOB_TEMPLATE}}},
                 "spec.schedule: Invalid value: '61 * * * *'", id="cronjob-bad-minute"),
    pytest.param("CronJob", {"schedule": "TZ=UTC * * * * *", "jobTemplate": {"spec": {"template": JOB_TEMPLATE}}},
                 "cannot use TZ or CRON_TZ in schedule", id="cronjob-tz-in-schedule"),
    pytest.param("CronJob", {"schedule": "* * * * *", "timeZone": "Mars/Olympus",
                             "jobTemplate": {"spec": {"template": JOB_TEMPLATE}}},
                 "spec.timeZone: Invalid value: 'Mars/Olympus': unknown time zone", id="cronjob-zone"),
    pytest.param("CronJob", {"schedule": "* * * * *", "concurrencyPolicy": "Sometimes",
                             "jobTemplate": {"spec": {"template": JOB_TEMPLATE}}},
                 "spec.concurrencyPolicy: Unsupported value: 'Sometimes'", id="cronjob-policy"),
    pytest.param("DaemonSet", {"selector": SELECTOR, "template": TEMPLATE}, None, id="daemonset-ok"),
    pytest.param("DaemonSet", {"selector": SELECTOR, "template": TEMPLATE,
                               "updateStrategy": {"rollingUpdate": {"maxUnavailable": 0, "maxSurge": 0}}},
                 "spec.updateStrategy.rollingUpdate.maxUnavailable: Invalid value: '0': may not be 0 when "
                 "`maxSurge` is 0", id="daemonset-zero-zero"),
    pytest.param("DaemonSet", {"selector": SELECTOR, "template": TEMPLATE,
                               "updateStrategy": {"type": "OnDelete", "rollingUpdate": {"maxUnavailable": 1}}},
                 "spec.updateStrategy.rollingUpdate: Forbidden", id="daemonset-ondelete-rolling"),
    pytest.param("DaemonSet", {"selector": {"matchLabels": {"app": "other"}}, "template": TEMPLATE},
                 "spec.template.metadata.labels: Invalid value", id="daemonset-selector-mismatch"),
    pytest.param("StatefulSet", {"selector": SELECTOR, "template": TEMPLATE, "serviceName": "web"}, None,
                 id="statefulset-ok"),
    pytest.param("StatefulSet", {"selector": SELECTOR, "template": TEMPLATE, "podManagementPolicy": "Random"},
                 "spec.podManagementPolicy: Unsupported value: 'Random'", id="statefulset-policy"),
    pytest.param("StatefulSet", {"selector": SELECTOR, "template": TEMPLATE,
                                 "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Keep"}},
                 "spec.persistentVolumeClaimRetentionPolicy.whenDeleted: Unsupported value: 'Keep'",
                 id="statefulset-retention"),
    pytest.param("StatefulSet", {"selector": SELECTOR, "template": {
        "metadata": {"labels": {"app": "web"}},
        "spec": {"containers": [{"name": "c", "image": "b", "volumeMounts": [{"name": "www", "mountPath": "/d"}]}]}},
        "volumeClaimTemplates": [{"metadata": {"name": "www"}, "spec": {
            "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]}, None,
        id="statefulset-mounts-its-claims"),
    pytest.param("StatefulSet", {"selector": SELECTOR, "template": TEMPLATE, "volumeClaimTemplates": [
        {"metadata": {"name": "www"}, "spec": {"accessModes": ["Sometimes"],
                                               "resources": {"requests": {"storage": "1Gi"}}}}]},
        "spec.volumeClaimTemplates[0].spec.accessModes", id="statefulset-claim-template"),
    pytest.param("PodDisruptionBudget", {"minAvailable": 2, "selector": SELECTOR}, None, id="pdb-ok"),
    pytest.param("PodDisruptionBudget", {"minAvailable": "120%", "selector": SELECTOR},
                 "spec.minAvailable: Invalid value: '120%': must not be greater than 100%", id="pdb-percent"),
    pytest.param("PodDisruptionBudget", {"maxUnavailable": 1, "minAvailable": 1, "selector": SELECTOR},
                 "minAvailable and maxUnavailable cannot be both set", id="pdb-both"),
    pytest.param("PodDisruptionBudget", {"maxUnavailable": 1, "unhealthyPodEvictionPolicy": "Never"},
                 "spec.unhealthyPodEvictionPolicy: Unsupported value: 'Never'", id="pdb-policy"),
])
def test_validation(kind: str, spec: dict[str, Any], message: str | None) -> None:
    """Valid objects pass; each invalid one names its field."""
    errs = errors(kind, spec)
    if message is None:
        assert errs == []
    else:
        assert any(message in e for e in errs), errs


def test_names() -> None:
    """A StatefulSet's name is its pods' hostname prefix (a DNS label); a CronJob's leaves room for its Jobs'."""
    sts = {"selector": SELECTOR, "template": TEMPLATE}
    assert any(e.startswith("metadata.name: Invalid value: 'web.v1'") for e in errors("StatefulSet", sts, "web.v1"))
    cj = {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": JOB_TEMPLATE}}}
    assert any("must be no more than 52 characters" in e for e in errors("CronJob", cj, "c" * 53))


def test_immutable_fields() -> None:
    """A Job's template and selector, a StatefulSet's service and claim templates, a revision's data are fixed."""
    def make(kind: str, spec: dict[str, Any]) -> Any:
        k = kinds.lookup(kind)
        obj = kinds.unwrap(convert.manifest_to_object({"apiVersion": k.api_version, "kind": kind,
                                                       "metadata": {"name": "x"}, "spec": spec}))
        defaults.apply(obj)
        return obj

    job = make("Job", {"template": JOB_TEMPLATE, "manualSelector": True, "selector": SELECTOR,
                       "completions": 2})
    job.spec.template.metadata.labels["app"] = "web"
    changed = make("Job", {"template": JOB_TEMPLATE, "manualSelector": True, "selector": SELECTOR,
                           "completions": 3})
    changed.spec.template.metadata.labels["app"] = "web"
    assert any(e.startswith("spec.completions: Invalid value: field is immutable") or
               e.startswith("spec.completions") for e in map(str, validation.validate_update(changed, job)))
    sts = make("StatefulSet", {"selector": SELECTOR, "template": TEMPLATE, "serviceName": "a"})
    moved = make("StatefulSet", {"selector": SELECTOR, "template": TEMPLATE, "serviceName": "b", "replicas": 5})
    assert any("updates to statefulset spec for fields other than" in str(e)
               for e in validation.validate_update(moved, sts))
    scaled = make("StatefulSet", {"selector": SELECTOR, "template": TEMPLATE, "serviceName": "a", "replicas": 5})
    assert validation.validate_update(scaled, sts) == []
