"""Every command's known failure paths, as a user meets them: one line saying what is wrong, a non-zero exit,
never a traceback."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click
from conftest import RunningApiserver

from cli.main import main

from .conftest import clean_env, run_kubelite

UNREACHABLE = "127.0.0.1:1"
NO_SERVER = ("--server", UNREACHABLE)
DOWN = "cannot reach the apiserver"
# {server} is the test apiserver; {tmp} a scratch directory.
CASES: list[tuple[tuple[str, ...], str]] = [
    # the user's verbs, without a reachable apiserver
    (("get", "pods", *NO_SERVER), DOWN),
    (("describe", "pod", "web", *NO_SERVER), DOWN),
    (("delete", "pod", "web", *NO_SERVER), DOWN),
    (("apply", "-f", "{tmp}/pod.yaml", *NO_SERVER), DOWN),
    (("create", "namespace", "team", *NO_SERVER), DOWN),
    (("create", "priorityclass", "high", "--value", "1000", *NO_SERVER), DOWN),
    (("create", "role", "r", "--verb", "get", "--resource", "pods", *NO_SERVER), DOWN),
    (("auth", "whoami", *NO_SERVER), DOWN),
    (("auth", "can-i", "list", "pods", *NO_SERVER), DOWN),
    (("auth", "can-i", "get", "wheels", "--server", "{server}"), 'doesn\'t have a resource type "wheels"'),
    (("create", "clusterrole", "r", "--verb", "get", "--resource", "wheels", "--server", "{server}"),
     '--resource wheels: the server doesn\'t have a resource type "wheels"'),
    (("create", "rolebinding", "b", "--user", "u", "--server", "{server}"),
     "exactly one of --role and --clusterrole is required"),
    (("create", "clusterrolebinding", "b", "--clusterrole", "view", "--serviceaccount", "x", "--server", "{server}"),
     "--serviceaccount x: expected NAMESPACE:NAME"),
    (("create", "serviceaccount", "robot", *NO_SERVER), DOWN),
    (("create", "token", "robot", "--duration", "soon", "--server", "{server}"), "--duration"),
    (("api-resources", *NO_SERVER), DOWN),
    (("label", "pod", "web", "a=b", *NO_SERVER), DOWN),
    (("annotate", "pod", "web", "a=b", *NO_SERVER), DOWN),
    (("scale", "deployment", "web", "--replicas", "2", *NO_SERVER), DOWN),
    (("cordon", "n1", *NO_SERVER), DOWN),
    (("uncordon", "n1", *NO_SERVER), DOWN),
    (("taint", "node", "n1", "dedicated=x:NoExecute", *NO_SERVER), DOWN),
    (("wait", "pod/web", "--for", "delete", "--timeout", "2", *NO_SERVER), DOWN),
    (("version", "--output", "json"), "No such option"),
    (("kubeconfig",), "give --rest-server https://HOST:PORT"),
    (("kubeconfig", "--rest-server", "http://127.0.0.1:1"), "the REST API is served over HTTPS"),
    (("exec", *NO_SERVER, "web", "--", "true"), DOWN),
    (("logs", "web", *NO_SERVER), DOWN),
    (("explain", "pod", "web", *NO_SERVER), DOWN),
    (("rollout", "status", "deployment/web", *NO_SERVER), DOWN),
    (("rollout", "history", "deployment/web", *NO_SERVER), DOWN),
    (("rollout", "pause", "deployment/web", *NO_SERVER), DOWN),
    (("rollout", "resume", "deployment/web", *NO_SERVER), DOWN),
    (("rollout", "restart", "deployment/web", *NO_SERVER), DOWN),
    (("rollout", "undo", "deployment/web", *NO_SERVER), DOWN),
    (("set", "image", "deployment/web", "web=busybox", *NO_SERVER), DOWN),
    (("drain", "n1", *NO_SERVER), DOWN),
    (("create", "job", "pi", "--image", "busybox", *NO_SERVER), DOWN),
    (("token", "create", *NO_SERVER), DOWN),
    (("token", "list", *NO_SERVER), DOWN),
    (("token", "delete", "abcdef", *NO_SERVER), DOWN),
    (("token", "create", "--certificate-authority", "{tmp}/missing.crt", *NO_SERVER), "missing.crt"),
    (("get", "pods", "--client-certificate", "{tmp}/missing.crt", *NO_SERVER), "missing.crt"),
    # the user's verbs against a server that lacks what they name, or with bad input
    (("get", "pod", "missing", "--server", "{server}"), 'pods "missing" not found'),
    (("get", "horizontalpodautoscalers", "--server", "{server}"), "doesn't have a resource type"),
    (("describe", "pod", "missing", "--server", "{server}"), 'pods "missing" not found'),
    (("delete", "pod", "missing", "--server", "{server}"), 'pods "missing" not found'),
    (("apply", "-f", "{tmp}/missing.yaml", "--server", "{server}"), "missing.yaml"),
    (("apply", "-f", "{tmp}/bad.yaml", "--server", "{server}"), "unknown field"),
    (("create", "namespace", "Bad_Name", "--server", "{server}"), "Bad_Name"),
    (("create", "priorityclass", "system-mine", "--server", "{server}"), "reserved for system use only"),
    (("create", "priorityclass", "high", "--value", "x", "--server", "{server}"), "'x' is not a valid integer"),
    (("create", "job", "pi", "--server", "{server}"), "either --image or --from must be specified"),
    (("create", "configmap", "c", "--from-file", "{tmp}/missing-file", "--server", "{server}"), "missing-file"),
    (("create", "secret", "generic", "s", "--from-literal", "novalue", "--server", "{server}"), "is not key=value"),
    (("create", "secret", "tls", "t", "--cert", "{tmp}/file", "--key", "{tmp}/file", "--server", "{server}"),
     "not a PEM certificate"),
    (("create", "secret", "docker-registry", "r", "--server", "{server}"), "--docker-password are required"),
    (("secrets", "rotate-key", "--encryption-config", "{tmp}/missing.yaml", "--server", "{server}"), "missing.yaml"),
    (("label", "pod", "missing", "a=b", "--server", "{server}"), 'pods "missing" not found'),
    (("annotate", "pod", "missing", "a=b", "--server", "{server}"), 'pods "missing" not found'),
    (("scale", "deployment", "missing", "--replicas", "2", "--server", "{server}"), '"missing" not found'),
    (("cordon", "missing", "--server", "{server}"), 'nodes "missing" not found'),
    (("uncordon", "missing", "--server", "{server}"), 'nodes "missing" not found'),
    (("taint", "node", "missing", "dedicated=x", "--server", "{server}"), "an effect is required"),
    (("taint", "node", "missing", "dedicated-", "--server", "{server}"), 'nodes "missing" not found'),
    (("wait", "pod/missing", "--for", "condition=Ready", "--timeout", "1", "--server", "{server}"), "missing"),
    (("exec", "--server", "{server}", "missing", "--", "true"), 'pods "missing" not found'),
    (("logs", "missing", "--server", "{server}"), 'pods "missing" not found'),
    (("explain", "pod", "missing", "--server", "{server}"), 'pod "missing" not found'),
    (("rollout", "status", "deployment/missing", "--server", "{server}"), '"missing" not found'),
    (("rollout", "history", "deployment/missing", "--server", "{server}"), '"missing" not found'),
    (("rollout", "pause", "deployment/missing", "--server", "{server}"), '"missing" not found'),
    (("rollout", "resume", "deployment/missing", "--server", "{server}"), '"missing" not found'),
    (("rollout", "restart", "deployment/missing", "--server", "{server}"), '"missing" not found'),
    (("rollout", "undo", "deployment/missing", "--server", "{server}"), '"missing" not found'),
    (("set", "image", "deployment/missing", "web=busybox", "--server", "{server}"), '"missing" not found'),
    (("token", "delete", "nosuch", "--server", "{server}"), "no join token nosuch"),
    (("token", "create", "--ttl", "soon", "--server", "{server}"), "invalid duration"),
    # the lab: names that are not clusters, clusters that are not up
    (("up", "--name", "Bad_Name"), "cluster name 'Bad_Name' is invalid"),
    (("up", "--ingress-nodes", "n9", "--name", "nosuch"), "no such node(s): n9"),
    (("up", "--add-node", "--ingress-nodes", "n2", "--name", "nosuch"), "with --add-node: all or none"),
    (("down", "--name", "Bad_Name"), "cluster name 'Bad_Name' is invalid"),
    (("status", "--name", "Bad_Name"), "cluster name 'Bad_Name' is invalid"),
    (("status", "--name", "nosuch"), "cluster 'nosuch' is not running"),
    (("images", "load", "{tmp}/missing.tar", "--name", "nosuch"), "missing.tar"),
    (("images", "build", "--out", "{tmp}/file"), "is a file"),
    (("chaos", "restart", "kubelet-n1", "--name", "nosuch"), "cluster 'nosuch' is not up"),
    (("chaos", "stop-node", "n1", "--name", "nosuch"), "cluster 'nosuch' is not up"),
    (("chaos", "partition", "n1", "--name", "Bad_Name"), "cluster name 'Bad_Name' is invalid"),
    (("chaos", "run", "node-loss", "--name", "nosuch"), "cluster 'nosuch' is not up"),
    (("chaos", "run", "worker-stop", "--name", "nosuch"), "cluster 'nosuch' is not up"),
    (("chaos", "run", "worker-stop", "--node", "n2", "--name", "nosuch"), "--node does not apply to scenario"),
    (("chaos", "run", "node-loss", "--report", "{tmp}/r", "--name", "nosuch"), "--report does not apply"),
    (("chaos", "run", "partition", "--rollout-pods", "30", "--name", "nosuch"), "--rollout-pods does not apply"),
    (("chaos", "soak", "--seed", "1", "--name", "nosuch"), "cluster 'nosuch' is not up"),
    (("chaos", "soak", "--seed", "1", "--duration", "ten", "--name", "nosuch"), "'ten' is not a duration"),
    (("chaos", "report", "{tmp}/nowhere"), "nowhere/report.json: no such report"),
    (("chaos", "report", "{tmp}"), "report.json: no such report"),
    (("bootstrap", "control-plane", "--address", "10.250.0.2", "--data-dir", "{tmp}/cp"), "systemd"),
    (("bootstrap", "control-plane", "--address", "10.250.0.3", "--ha", "--join", "10.250.0.2"), "give one of them"),
    (("bootstrap", "etcd-members", "--endpoints", "https://127.0.0.1:1", "--cacert", "{tmp}/missing.crt",
      "--cert", "{tmp}/missing.crt", "--key", "{tmp}/missing.key"), "missing.crt"),
    (("up", "--control-planes", "2", "--name", "nosuch"), "2 is even"),
    (("up", "--control-planes", "9", "--name", "nosuch"), "--control-planes"),
    (("get", "pods", "--server", "10.250.0.2:6443,"), "empty apiserver address"),
    (("get", "pods", "--server", "a.example:6443,b.example:6443"), "not an IPv4 address:port"),
    (("bootstrap", "node", "--name", "n1", "--address", "10.250.0.10", "--pod-cidr", "10.244.1.0/24",
      "--server", "10.250.0.2:6443", "--node-dir", "{tmp}/node"), "systemd"),
    (("bootstrap", "join", "--join-server", UNREACHABLE, "--token-file", "{tmp}/missing-token", "--name", "n1",
      "--address", "10.250.0.10", "--pki-dir", "{tmp}/pki"), "missing-token"),
    (("certs", "check-expiration", "--name", "nosuch"), "cluster 'nosuch' is not running"),
    (("certs", "renew", "all", "--name", "nosuch"), "cluster 'nosuch' is not running"),
    # VM labs: names that are not labs, labs that are not up, sizes out of range
    (("vm", "box", "--no-such-flag"), "no-such-flag"),
    (("vm", "up", "--workers", "-1", "--name", "nosuch"), "between 1 and 9"),
    (("vm", "down", "--name", "Bad_Name"), "'Bad_Name': use 1-20 lowercase"),
    (("vm", "ssh", "--name", "nosuch", "cp", "true"), "VM lab 'nosuch' is not up"),
    (("vm", "exec", "--name", "nosuch", "true"), "VM lab 'nosuch' is not up"),
    (("vm", "vagrant", "--name", "nosuch", "status"), "VM lab 'nosuch' is not up"),
    (("chaos", "run", "kubelet-kill", "--vm", "nosuch"), "VM lab 'nosuch' is not up"),
    (("chaos", "soak", "--seed", "1", "--vm", "Bad_Name"), "--vm 'Bad_Name': use 1-20 lowercase"),
    (("chaos", "run", "kubelet-kill", "--vm", "nosuch", "--name", "other"), "--name and --vm name two clusters"),
    (("chaos", "run", "node-loss", "--vm", "nosuch"), "--vm does not apply to scenario node-loss"),
    # daemons refuse bad flags before they start
    (("apiserver", "--service-cidr", "not-a-cidr"), "not-a-cidr"),
    (("apiserver", "--lb-pool", "10.250.0.9-10.250.0.1"), "--lb-pool entry '10.250.0.9-10.250.0.1'"),
    (("apiserver", "--listen", "0.0.0.0:16443"), "no TLS files given"),
    (("scheduler", "--server", UNREACHABLE, "--log-level", "info", "--no-such-flag"), "no-such-flag"),
    (("controller-manager", "--no-such-flag"), "no-such-flag"),
    (("kubelet", "--server", UNREACHABLE), "--node-name"),
    (("proxy", "--no-such-flag"), "no-such-flag"),
    (("speaker", "--server", UNREACHABLE, "--node-name", "n1", "--node-ip", "10.250.0.11"),
     "refusing to answer ARP in the machine's root network namespace"),
    (("speaker", "--server", UNREACHABLE, "--node-name", "n1", "--node-ip", "n1"), "--node-ip"),
    (("dns", "--no-such-flag"), "no-such-flag"),
    (("ingress", "--no-such-flag"), "no-such-flag"),
    (("hollow-nodes", "--no-such-flag"), "no-such-flag"),
    (("supervise",), "--pid-dir"),
    (("create", "job", "pi", "--server", "{server}"), "either --image or --from must be specified"),
    (("drain", "--server", "{server}"), "Missing argument 'NODE'"),
    (("registry", "--no-such-flag"), "no-such-flag"),
    (("registry", "--listen", "10.250.0.2:5000"), "is not loopback: give --tls-cert-file"),
    (("registry", "--tls-cert-file", "{tmp}/registry.crt"), "mutual TLS needs all of"),
]


def _leaf_commands(group: click.Group, prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    out = set()
    for name, cmd in group.commands.items():
        if isinstance(cmd, click.Group):
            out |= _leaf_commands(cmd, (*prefix, name))
        else:
            out.add((*prefix, name))
    return out


def test_every_command_has_a_failure_case() -> None:
    """The table below names at least one failure of every command the CLI has."""
    leaves = _leaf_commands(main)
    covered = {next((args[:n] for n in (3, 2) if args[:n] in leaves), args[:1]) for args, _ in CASES}
    assert leaves - covered == set()


async def test_failures_are_one_line(apiserver: RunningApiserver, tmp_path: Path) -> None:
    """Each known failure exits non-zero with an error naming the problem and no traceback; none of them is the
    catch-all for failures nobody foresaw."""
    (tmp_path / "pod.yaml").write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: web}\n"
                                       "spec: {containers: [{name: c, image: busybox}]}\n")
    (tmp_path / "bad.yaml").write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec: {wheels: 4}\n")
    (tmp_path / "file").write_text("not a directory\n")
    env = clean_env(tmp_path)
    sem = asyncio.Semaphore(4)

    async def one(args: tuple[str, ...], expect: str) -> str | None:
        argv = [a.format(server=apiserver.address, tmp=tmp_path) for a in args]
        async with sem:
            result = await run_kubelite(*argv, env=env, timeout=60)
        problems = []
        if result.code == 0:
            problems.append("exit 0")
        if "Traceback" in result.err or "Traceback" in result.out:
            problems.append("a traceback")
        if "unexpected; KUBELITE_TRACEBACK" in result.err:
            problems.append("the catch-all")
        if expect not in result.err:
            problems.append(f"no {expect!r}")
        return f"kubelite {' '.join(argv)}: {', '.join(problems)}:\n{result.err}" if problems else None

    failures = [f for f in await asyncio.gather(*(one(a, e) for a, e in CASES)) if f]
    assert not failures, "\n".join(failures)
