"""Driving a lab cluster from tests: the CLI as a user runs it, plus the lab's own handles."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from client.api import Client
from client.config import config_path
from deploy.lab.cluster import client_config_for, node_dir
from deploy.lab.plan import LabPlan

KUBELITE = str(Path(sys.executable).with_name("kubelite"))


@dataclass
class Lab:
    plan: LabPlan

    @property
    def name(self) -> str:
        return self.plan.cluster

    @property
    def env(self) -> dict[str, str]:
        """As a user after `kubelite up`: the config file it wrote (server, CA, the admin's certificate)."""
        return {**{k: v for k, v in os.environ.items() if not k.startswith("KUBELITE_")},
                "KUBELITE_CONFIG": str(config_path()), "KUBELITE_CLUSTER": self.name}

    def client(self) -> Client:
        return Client(client_config_for(self.plan))

    def kubelite(self, *args: str, check: bool = True, timeout: float = 120,
                 stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run the CLI as a user would; on failure the error names the command and its output."""
        result = subprocess.run([KUBELITE, *args], capture_output=True, text=True, timeout=timeout, env=self.env,
                                input=stdin)
        if check and result.returncode != 0:
            raise AssertionError(f"kubelite {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n"
                                 f"{result.stderr}")
        return result

    async def akubelite(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return await asyncio.to_thread(self.kubelite, *args, check=check, timeout=timeout)

    def get_json(self, *args: str) -> Any:
        return json.loads(self.kubelite("get", *args, "-o", "json").stdout)

    def exec_in(self, pod: str, command: str, *, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return self.kubelite("exec", pod, "--timeout", str(int(timeout)), "--", "sh", "-c", command,
                             timeout=timeout + 30, check=False)

    def containerd_socket(self, node: str) -> str:
        return str(node_dir(self.plan, node) / "containerd" / "run" / "containerd.sock")

    def tag_image(self, source: str, target: str) -> None:
        """Give an image a second name on every node (a "new version" without a registry)."""
        for node in self.plan.nodes:
            subprocess.run(["ctr", "-a", self.containerd_socket(node.role), "-n", "k8s.io", "images", "tag",
                            "--force", source, target], check=True, capture_output=True, timeout=60)

    def logs_text(self, lines: int = 80) -> str:
        out = []
        for f in sorted(self.plan.paths.log_dir.glob("*.log")):
            text = f.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"===== {f.name} (last {len(text)} lines)\n" + "\n".join(text))
        return "\n".join(out)


def wait_until(fn, *, timeout: float, interval: float = 0.25, what: str = "condition"):  # type: ignore[no-untyped-def]
    """Poll `fn` until it returns a truthy value; return it, or fail naming `what`."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


def pods(lab: Lab, selector: str) -> list[dict[str, Any]]:
    return lab.get_json("pods", "-l", selector)["items"]


def ready(pod: dict[str, Any]) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in pod.get("status", {}).get("conditions", []))
