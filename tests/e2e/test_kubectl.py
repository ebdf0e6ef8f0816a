"""Real kubectl against a 3-node lab's REST API, as a Kubernetes user drives a cluster; what it shows agrees with
`kubelite get`. kubectl runs in the control plane's network namespace, where the REST port is (see README)."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import shutil
import signal
import struct
import subprocess
import termios
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .lab import Lab, pods, ready, wait_until

ROOT = Path(__file__).resolve().parents[2]
KUBECTL = shutil.which("kubectl")
pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not on the PATH (this test drives the real "
                                                        "kubectl against the lab's REST API)")


@pytest.fixture(scope="module", autouse=True)
def kubeconfigs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    _DIR.append(tmp_path_factory.mktemp("kubectl"))
    yield
    _DIR.clear()


_DIR: list[Path] = []


def kubeconfig_of(lab: Lab) -> Path:
    """This lab's kubeconfig from `kubelite kubeconfig` (~/.kubelite/kubeconfig is the last lab `up` started)."""
    path = _DIR[0] / f"{lab.plan.cluster}.kubeconfig"
    if not path.exists():
        lab.kubelite("kubeconfig", "-o", str(path))
    return path


def kubectl(lab: Lab, *args: str, check: bool = True, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """kubectl with the lab's kubeconfig, inside the control plane's namespace."""
    kubeconfig = kubeconfig_of(lab)
    result = subprocess.run(["ip", "netns", "exec", lab.plan.control_plane.netns, str(KUBECTL), "--kubeconfig",
                             str(kubeconfig), *args], capture_output=True, text=True, timeout=timeout,
                            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": str(kubeconfig.parent)})
    if check:
        assert result.returncode == 0, f"kubectl {' '.join(args)}: {result.stdout}{result.stderr}"
    return result


def test_kubectl_drives_the_lab(lab: Lab) -> None:
    """get nodes -o wide, apply -f examples/, rollout status, get pods -o wide -l, scale, set image, rollout undo,
    logs, exec, describe, get events, api-resources, delete -f: each as against Kubernetes."""
    nodes = kubectl(lab, "get", "nodes", "-o", "wide").stdout.splitlines()
    assert nodes[0].split()[:6] == ["NAME", "STATUS", "ROLES", "AGE", "VERSION", "INTERNAL-IP"]
    assert sorted(line.split()[0] for line in nodes[1:]) == sorted(
        n["metadata"]["name"] for n in lab.get_json("nodes")["items"])
    assert all(line.split()[1] == "Ready" for line in nodes[1:])
    try:
        applied = kubectl(lab, "apply", "-f", str(ROOT / "examples")).stdout
        assert "deployment.apps/web created" in applied
        kubectl(lab, "rollout", "status", "deployment/web", "--timeout=180s")
        wide = kubectl(lab, "get", "pods", "-o", "wide", "-l", "app=web").stdout.splitlines()
        assert wide[0].split()[:7] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE"]
        shown = {line.split()[0]: line.split() for line in wide[1:]}
        theirs = {p["metadata"]["name"]: p for p in pods(lab, "app=web")}
        assert set(shown) == set(theirs) and len(shown) == 3
        for name, cells in shown.items():
            assert cells[1:3] == ["1/1", "Running"]
            assert cells[5] == theirs[name]["status"]["podIP"] and cells[6] == theirs[name]["spec"]["nodeName"]

        kubectl(lab, "scale", "deployment", "web", "--replicas", "5")
        kubectl(lab, "rollout", "status", "deployment/web", "--timeout=180s")
        wait_until(lambda: len([p for p in pods(lab, "app=web") if ready(p)]) == 5, timeout=120,
                   what="5 ready web pods")
        kubectl(lab, "set", "image", "deployment/web", "web=busybox:1.28")
        kubectl(lab, "rollout", "status", "deployment/web", "--timeout=240s")
        image = kubectl(lab, "get", "deploy", "web", "-o", "jsonpath={.spec.template.spec.containers[0].image}")
        assert image.stdout == "busybox:1.28"
        kubectl(lab, "rollout", "undo", "deployment/web")
        kubectl(lab, "rollout", "status", "deployment/web", "--timeout=240s")
        image = kubectl(lab, "get", "deploy", "web", "-o", "jsonpath={.spec.template.spec.containers[0].image}")
        assert image.stdout == "localhost:5000/kubelite/busybox:1.35"

        kubectl(lab, "wait", "--for=condition=Ready", "pod/client", "--timeout=120s")
        answer = kubectl(lab, "exec", "client", "--", "wget", "-q", "-O", "-", "http://web").stdout
        assert answer.startswith("hello from web-")
        kubectl(lab, "logs", "deploy/web")
        described = kubectl(lab, "describe", "pod", "client").stdout
        assert re.search(r"^Status:\s+Running$", described, re.M) and "Node:" in described, described
        assert "Scheduled" in kubectl(lab, "get", "events").stdout
        assert "deployments" in kubectl(lab, "api-resources").stdout
    finally:
        kubectl(lab, "delete", "-f", str(ROOT / "examples"), "--ignore-not-found", check=False)
    wait_until(lambda: not pods(lab, "app=web"), timeout=120, what="web pods gone")


def test_stateless_application_tutorial(lab: Lab) -> None:
    """The Kubernetes tutorial "Run a Stateless Application Using a Deployment", step by step with kubectl and
    its manifests unchanged: apply, describe, get -l, apply of the updated and the scaled manifests, delete."""
    docs = ROOT / "tests" / "data" / "k8s-docs" / "tutorial-stateless"

    def nginx_pods() -> list[list[str]]:
        lines = kubectl(lab, "get", "pods", "-l", "app=nginx").stdout.splitlines()
        return [line.split() for line in lines[1:]]

    def settled(replicas: int, image: str) -> bool:
        ours = pods(lab, "app=nginx")
        return len(ours) == replicas and all(
            ready(p) and p["spec"]["containers"][0]["image"] == image for p in ours)

    try:
        assert "deployment.apps/nginx-deployment created" in kubectl(lab, "apply", "-f",
                                                                      str(docs / "deployment.yaml")).stdout
        described = kubectl(lab, "describe", "deployment", "nginx-deployment").stdout
        assert re.search(r"Replicas:\s+2 desired", described) and "nginx:1.14.2" in described
        wait_until(lambda: settled(2, "nginx:1.14.2"), timeout=180, what="2 nginx:1.14.2 pods ready")
        shown = nginx_pods()
        assert len(shown) == 2 and all(cells[1:3] == ["1/1", "Running"] for cells in shown)
        pod_described = kubectl(lab, "describe", "pod", shown[0][0]).stdout
        assert re.search(r"Image:\s+nginx:1\.14\.2", pod_described)

        assert "deployment.apps/nginx-deployment configured" in kubectl(
            lab, "apply", "-f", str(docs / "deployment-update.yaml")).stdout
        wait_until(lambda: settled(2, "nginx:1.16.1"), timeout=240, what="2 nginx:1.16.1 pods ready")
        kubectl(lab, "apply", "-f", str(docs / "deployment-scale.yaml"))
        wait_until(lambda: settled(4, "nginx:1.16.1"), timeout=240, what="4 nginx:1.16.1 pods ready")
        assert len(nginx_pods()) == 4
    finally:
        kubectl(lab, "delete", "deployment", "nginx-deployment", "--ignore-not-found", check=False)
    wait_until(lambda: not pods(lab, "app=nginx"), timeout=120, what="nginx pods gone")


def on_terminal(lab: Lab, *args: str, steps: list[tuple[str, str | tuple[int, int]]], rows: int = 30,
                cols: int = 100, timeout: float = 90) -> tuple[int, str]:
    """kubectl on a pseudo-terminal of `rows` x `cols`, as a user at a terminal: each step waits for its text in
    the output, then types its keys, or resizes the terminal (rows, cols) as a terminal window does (SIGWINCH).
    The exit code and everything the terminal showed."""
    kubeconfig = kubeconfig_of(lab)
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    proc = subprocess.Popen(["ip", "netns", "exec", lab.plan.control_plane.netns, str(KUBECTL), "--kubeconfig",
                             str(kubeconfig), *args], stdin=slave, stdout=slave, stderr=slave,
                            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": str(kubeconfig.parent),
                                 "TERM": "xterm"}, start_new_session=True)
    os.close(slave)
    out = bytearray()
    pending = list(steps)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if pending and pending[0][0].encode() in out:
                action = pending.pop(0)[1]
                if isinstance(action, str):
                    os.write(master, action.encode())
                else:
                    fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", *action, 0, 0))
                    proc.send_signal(signal.SIGWINCH)
                    time.sleep(1)  # the new size travels to the container's terminal before the next step
            ready_, _, _ = select.select([master], [], [], 0.2)
            if not ready_:
                continue
            try:
                data = os.read(master, 4096)
            except OSError:  # EIO: kubectl has gone and the terminal is closed
                break
            if not data:
                break
            out += data
        else:
            raise AssertionError(f"kubectl {' '.join(args)} still running after {timeout}s; steps left "
                                 f"{pending}; it showed {out.decode(errors='replace')!r}")
        return proc.wait(timeout=10), out.decode(errors="replace")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)


TERMINAL_POD = """apiVersion: v1
kind: Pod
metadata:
  name: term
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  containers:
  - name: shell
    image: localhost:5000/kubelite/busybox:1.35
    command: ["sh"]
    stdin: true
    tty: true
"""


def test_kubectl_exec_and_attach_with_a_terminal(lab: Lab, tmp_path: Path) -> None:
    """`kubectl exec -i -t` runs a command on a terminal of the user's size, resized with the user's window (tty,
    stty size, typed input, its exit code), and `kubectl attach -i -t` reaches a container's own shell, streamed
    both ways."""
    manifest = tmp_path / "term.yaml"
    manifest.write_text(TERMINAL_POD)
    try:
        kubectl(lab, "apply", "-f", str(ROOT / "examples" / "client.yaml"), "-f", str(manifest))
        kubectl(lab, "wait", "--for=condition=Ready", "pod/client", "pod/term", "--timeout=120s")
        # Each `stty size` runs after a line is typed: the terminal's first size is sent as the session opens.
        code, shown = on_terminal(lab, "exec", "-i", "-t", "client", "--", "sh", "-c",
                                  "tty; read a; stty size; read b; stty size; echo got:$a-$b",
                                  steps=[("/dev/pts/", "hello\r"), ("30 100", (40, 120)), ("30 100", "world\r")])
        assert code == 0, shown
        assert "30 100" in shown and "40 120" in shown and "got:hello-world" in shown, shown
        code, shown = on_terminal(lab, "exec", "-it", "client", "--", "sh", "-c", "exit 3", steps=[])
        assert code == 3, shown
        code, shown = on_terminal(lab, "attach", "-i", "-t", "term",
                                  steps=[("pressing enter", "\r"), ("# ", "echo attached-$((6*7))\r"),
                                         ("attached-42", "exit\r")])
        assert code == 0, shown
        assert "attached-42" in shown, shown
    finally:
        kubectl(lab, "delete", "-f", str(ROOT / "examples" / "client.yaml"), "-f", str(manifest),
                "--ignore-not-found", check=False)
