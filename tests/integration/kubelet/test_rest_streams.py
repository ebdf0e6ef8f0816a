"""pods/log and pods/exec through the REST face, to a real kubelet (over its fake runtime), with real kubectl and
the official Python client."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path

import pytest
import testpki
from conftest import start_apiserver
from kubernetes import client as k8s
from kubernetes import watch as k8s_watch

from api import convert
from client import kubeconfig

from .kubelethelp import config, kubelet, pod, pod_where, running_ready
from .test_kubelet_fake import CHATTY, fake

KUBECTL = shutil.which("kubectl")


async def test_logs_and_exec_over_rest(etcd: str, tmp_path: Path) -> None:
    """The Python client creates a pod and watches it until Ready; kubectl logs and the Python client read its
    log; kubectl exec runs a command over WebSocket and reports its output and exit code as against Kubernetes;
    kubectl attach is refused by the runtime, by name."""
    server = await start_apiserver(etcd, rest_listen=["127.0.0.1:0"])
    url = f"https://127.0.0.1:{server.server.rest_ports[0]}"
    pki = testpki.get()
    try:
        async with server.client() as client, \
                kubelet(client, fake(), config("node-r", tmp_path, node_ip="127.0.0.1")):
            conf = k8s.Configuration()
            conf.host, conf.ssl_ca_cert = url, pki.ca_file
            conf.cert_file, conf.key_file = pki.path("admin"), pki.path("admin", "key")
            core = k8s.CoreV1Api(k8s.ApiClient(conf))
            body = convert.object_to_manifest(pod("talk", "node-r", {"name": "main", "image": CHATTY}))
            await asyncio.to_thread(core.create_namespaced_pod, "default", body)

            def until_ready() -> str:
                w = k8s_watch.Watch()
                for event in w.stream(core.list_namespaced_pod, "default", field_selector="metadata.name=talk",
                                      timeout_seconds=30):
                    conditions = event["object"].status.conditions or []
                    if any(c.type == "Ready" and c.status == "True" for c in conditions):
                        w.stop()
                        return event["type"]
                return "timed out"

            assert await asyncio.to_thread(until_ready) == "MODIFIED"
            await pod_where(client, "talk", running_ready)
            text = await asyncio.to_thread(core.read_namespaced_pod_log, "talk", "default")
            assert text == "hello\nworld\n"
            tail = await asyncio.to_thread(core.read_namespaced_pod_log, "talk", "default", tail_lines=1)
            assert tail == "world\n"

            if KUBECTL is None:
                pytest.skip("kubectl is not on the PATH: its part of this test (logs, exec) did not run")
            path = tmp_path / "kubeconfig"
            path.write_text(kubeconfig.render(url, pki.pem("ca"), pki.pem("admin"), pki.pem("admin", "key")))

            def kubectl(*args: str) -> subprocess.CompletedProcess[str]:
                return subprocess.run([KUBECTL, "--kubeconfig", str(path), *args], capture_output=True, text=True,
                                      timeout=60, env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"})

            logs = await asyncio.to_thread(kubectl, "logs", "talk")
            assert (logs.returncode, logs.stdout) == (0, "hello\nworld\n"), logs.stderr
            done = await asyncio.to_thread(kubectl, "exec", "talk", "--", "x")
            assert done.stdout == "out\n"
            assert done.stderr.startswith("err\n")
            assert "command terminated with exit code 3" in done.stderr
            assert done.returncode == 3
            fed = await asyncio.to_thread(subprocess.run, [KUBECTL, "--kubeconfig", str(path), "exec", "-i", "talk",
                                                           "--", "cat"], input="some input\n", capture_output=True,
                                          text=True, timeout=60, env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"})
            assert (fed.returncode, fed.stdout) == (3, "out\n"), fed.stderr

            def follow() -> str:
                proc = subprocess.Popen([KUBECTL, "--kubeconfig", str(path), "logs", "-f", "talk"],
                                        stdout=subprocess.PIPE, text=True,
                                        env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"})
                try:
                    assert proc.stdout is not None
                    return proc.stdout.readline() + proc.stdout.readline()
                finally:
                    proc.kill()
                    proc.wait()

            assert await asyncio.to_thread(follow) == "hello\nworld\n"
            # A terminal or an attach needs the runtime's streaming server, which the fake runtime does not have.
            attached = await asyncio.to_thread(kubectl, "attach", "talk")
            assert attached.returncode != 0
            assert "the fake runtime runs no processes to stream" in attached.stderr, attached.stderr
            missing = await asyncio.to_thread(kubectl, "exec", "nothere", "--", "x")
            assert 'Error from server (NotFound): pods "nothere" not found' in missing.stderr
    finally:
        await server.stop()
