"""PriorityClass as a user meets it: the documentation's manifests apply, pods get their class's value, `get pc`,
`describe`, `create priorityclass`, one global default, and the system classes that cannot be deleted."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from .conftest import DOCS, Kubelite

PRIORITY = DOCS / "priority"
HEADER = ["NAME", "VALUE", "GLOBAL-DEFAULT", "AGE", "PREEMPTIONPOLICY"]


def _columns(out: str) -> list[list[str]]:
    return [line.split() for line in out.splitlines()]


async def test_documentation_class_applies_and_pods_get_its_value(kubelite: Kubelite) -> None:
    """The documentation's high-priority class applies; a pod naming it gets its value and policy; both read back."""
    applied = await kubelite("apply", "-f", str(PRIORITY / "priority-class.yaml"))
    assert (applied.code, applied.out, applied.err) == (0, "priorityclass.scheduling.k8s.io/high-priority created\n",
                                                         "")
    doc = yaml.safe_load((PRIORITY / "priority-class.yaml").read_text())
    got = yaml.safe_load((await kubelite("get", "priorityclass", "high-priority", "-o", "yaml")).out)
    assert {k: got[k] for k in ("apiVersion", "kind", "value", "description")} == \
        {k: doc[k] for k in ("apiVersion", "kind", "value", "description")}
    assert got["metadata"]["name"] == "high-priority" and "namespace" not in got["metadata"]
    # globalDefault: false is left out, as Kubernetes prints it (omitempty); the policy is defaulted.
    assert "globalDefault" not in got and got["preemptionPolicy"] == "PreemptLowerPriority"

    pod = await kubelite("apply", "-f", str(PRIORITY / "pod-with-priority.yaml"))
    assert (pod.code, pod.out) == (0, "pod/nginx created\n"), pod.err
    spec = json.loads((await kubelite("get", "pod", "nginx", "-o", "json")).out)["spec"]
    assert (spec["priorityClassName"], spec["priority"], spec["preemptionPolicy"]) == \
        ("high-priority", 1000000, "PreemptLowerPriority")
    again = await kubelite("apply", "-f", str(PRIORITY))
    assert again.code == 0, again.err
    assert sorted(again.out.splitlines()) == ["pod/nginx unchanged",
                                              "priorityclass.scheduling.k8s.io/high-priority unchanged",
                                              "priorityclass.scheduling.k8s.io/high-priority-nonpreempting created"]
    never = json.loads((await kubelite("get", "pc", "high-priority-nonpreempting", "-o", "json")).out)
    assert (never["value"], never["preemptionPolicy"]) == (1000000, "Never")


async def test_get_lists_the_system_classes_in_kubectls_columns(kubelite: Kubelite) -> None:
    """`get pc` shows kubectl's columns; the two system classes exist from the start."""
    await kubelite("apply", "-f", str(PRIORITY / "priority-class-nonpreempting.yaml"))
    result = await kubelite("get", "pc")
    assert result.code == 0, result.err
    rows = _columns(result.out)
    assert rows[0] == HEADER
    assert [(r[0], r[1], r[2], r[4]) for r in rows[1:]] == [
        ("high-priority-nonpreempting", "1000000", "false", "Never"),
        ("system-cluster-critical", "2000000000", "false", "PreemptLowerPriority"),
        ("system-node-critical", "2000001000", "false", "PreemptLowerPriority"),
    ]
    names = await kubelite("get", "priorityclasses", "-o", "name")
    assert names.out.splitlines()[-1] == "priorityclass.scheduling.k8s.io/system-node-critical"


async def test_describe(kubelite: Kubelite) -> None:
    """`describe pc` shows the value, the default flag, the policy and the description."""
    await kubelite("apply", "-f", str(PRIORITY / "priority-class.yaml"))
    result = await kubelite("describe", "priorityclass", "high-priority")
    assert result.code == 0, result.err
    lines = [" ".join(line.split()) for line in result.out.splitlines()]
    assert "Name: high-priority" in lines
    assert lines[lines.index("Value: 1000000"):lines.index("Value: 1000000") + 4] == [
        "Value: 1000000", "GlobalDefault: false", "PreemptionPolicy: PreemptLowerPriority",
        "Description: This priority class should be used for XYZ service pods only."]


async def test_create_priorityclass_and_the_global_default(kubelite: Kubelite) -> None:
    """`create priorityclass` as kubectl's; pods without a class get the default's; a second default is refused."""
    made = await kubelite("create", "priorityclass", "default-priority", "--value", "1000", "--global-default",
                          "--description", "default priority")
    assert (made.code, made.out) == (0, "priorityclass.scheduling.k8s.io/default-priority created\n"), made.err
    never = await kubelite("create", "priorityclass", "high-priority", "--value=1000", "--description=high priority",
                           "--preemption-policy=Never", "--global-default=false")
    assert never.code == 0, never.err
    got = json.loads((await kubelite("get", "pc", "high-priority", "-o", "json")).out)
    assert (got["value"], got.get("globalDefault", False), got["preemptionPolicy"], got["description"]) == \
        (1000, False, "Never", "high priority")
    second = await kubelite("create", "priorityclass", "other-default", "--value", "5", "--global-default=true")
    assert second.code == 1
    assert second.err_lines == ['Error from server (Forbidden): priorityclasses.scheduling.k8s.io "other-default" is '
                                "forbidden: PriorityClass default-priority is already marked as default. Only one "
                                "default can exist"]

    plain = await kubelite("apply", "-f", "-", stdin="apiVersion: v1\nkind: Pod\nmetadata: {name: plain}\n"
                                                     "spec: {containers: [{name: c, image: busybox}]}\n")
    assert plain.code == 0, plain.err
    spec = json.loads((await kubelite("get", "pod", "plain", "-o", "json")).out)["spec"]
    assert (spec["priorityClassName"], spec["priority"], spec["preemptionPolicy"]) == \
        ("default-priority", 1000, "PreemptLowerPriority")


async def test_create_priorityclass_refuses_bad_input(kubelite: Kubelite) -> None:
    """Bad flags give one line naming the field and write nothing."""
    cases = [
        (("--value", "2000000000"), "value: Forbidden: maximum allowed value of a user defined priority is 1000000000"),
        (("--preemption-policy", "Sometimes"), "preemptionPolicy: Unsupported value: 'Sometimes'"),
    ]
    for flags, message in cases:
        result = await kubelite("create", "priorityclass", "bad", *flags)
        assert result.code == 1 and len(result.err_lines) == 1 and message in result.err, result.err
    # Past int32 is a usage error, as for any flag out of its range.
    usage = await kubelite("create", "priorityclass", "bad", "--value", "3000000000")
    assert usage.code == 2 and "Invalid value for '--value': 3000000000 is not in the range" in usage.err
    assert (await kubelite("get", "pc", "bad")).code == 1


async def test_system_classes_cannot_be_deleted_and_values_are_fixed(kubelite: Kubelite, tmp_path: Path) -> None:
    """Deleting a system class is forbidden; a class's value may not change; an unknown class refuses the pod."""
    refused = await kubelite("delete", "pc", "system-node-critical")
    assert refused.code == 1
    assert refused.err_lines == ['Error from server (Forbidden): priorityclasses.scheduling.k8s.io '
                                 '"system-node-critical" is forbidden: this is a system priority class and cannot be '
                                 "deleted"]
    assert (await kubelite("get", "pc", "system-node-critical")).code == 0

    await kubelite("apply", "-f", str(PRIORITY / "priority-class.yaml"))
    changed = tmp_path / "changed.yaml"
    changed.write_text((PRIORITY / "priority-class.yaml").read_text().replace("value: 1000000", "value: 7"))
    result = await kubelite("apply", "-f", str(changed))
    assert result.code == 1
    assert 'PriorityClass "high-priority" is invalid: value: Forbidden: may not be changed in an update.' in result.err
    deleted = await kubelite("delete", "pc", "high-priority")
    assert deleted.code == 0, deleted.err

    manifest = ("apiVersion: v1\nkind: Pod\nmetadata: {name: gold}\n"
                "spec: {priorityClassName: gold, containers: [{name: c, image: x}]}\n")
    gold = await kubelite("apply", "-f", "-", stdin=manifest)
    assert gold.code == 1
    assert 'pods "gold" is forbidden: no PriorityClass with name gold was found (known: system-cluster-critical, ' \
           "system-node-critical)" in gold.err
