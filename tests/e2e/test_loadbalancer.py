"""LoadBalancer Services on the lab: the address answers from outside the nodes, moves when its node stops,
and with externalTrafficPolicy Local is announced only where an endpoint runs.

ARP replies for the address are watched on every port of the lab bridge (tests/e2e/arpwatch.py)."""

from __future__ import annotations

import collections
import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .lab import KUBELITE, Lab, pods, ready, wait_until

ROOT = Path(__file__).resolve().parents[2]
ARPWATCH = Path(__file__).with_name("arpwatch.py")
PROBE_IP = "10.250.0.5"  # unused on the lab network: the watcher's ARP requests come from it

FETCH = """
import json, sys, time, urllib.request
url, n, interval, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
end = time.time() + seconds
for i in range(n):
    if seconds and time.time() > end:
        break
    t = time.time()
    try:
        body = urllib.request.urlopen(url, timeout=1 if seconds else 5).read().decode()
    except Exception as e:
        body = "error: " + str(e)
    print(json.dumps({"t": t, "body": body.strip()}), flush=True)
    time.sleep(interval)
"""

WHOAMI = {
    "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "whoami"},
    "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "whoami"}}, "template": {
        "metadata": {"labels": {"app": "whoami"}},
        "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
            "name": "whoami", "image": "localhost:5000/kubelite/busybox:1.35", "command": ["sh", "-c"],
            # A CGI script: httpd gives it the client's address in REMOTE_ADDR.
            "args": ["mkdir -p /tmp/www/cgi-bin && printf '#!/bin/sh\\necho Content-Type: text/plain\\necho\\n"
                     "echo \"client $REMOTE_ADDR to $(hostname)\"\\n' > /tmp/www/cgi-bin/ip && "
                     "chmod +x /tmp/www/cgi-bin/ip && exec httpd -f -p 8080 -h /tmp/www"],
            "ports": [{"name": "http", "containerPort": 8080}],
            "readinessProbe": {"tcpSocket": {"port": "http"}, "periodSeconds": 1}}]}}}}
WHOAMI_SVC = {
    "apiVersion": "v1", "kind": "Service", "metadata": {"name": "whoami"},
    "spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Local", "selector": {"app": "whoami"},
             "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}}


@pytest.fixture(scope="module")
def demo(lab: Lab) -> Iterator[Lab]:
    """The README's demo, whose web-lb Service is a LoadBalancer."""
    lab.kubelite("apply", "-f", str(ROOT / "examples"))
    lab.kubelite("rollout", "status", "deployment/web", "--timeout", "120s", timeout=150)
    lab.kubelite("wait", "--for=condition=Ready", "pod/client", "--timeout", "90", timeout=120)
    yield lab
    lab.kubelite("delete", "-f", str(ROOT / "examples"), "--ignore-not-found", "--grace-period", "1")


def external_ip(lab: Lab, name: str) -> str:
    """The Service's EXTERNAL-IP once a node announces it."""
    def announced() -> str:
        ingress = lab.get_json("service", name).get("status", {}).get("loadBalancer", {}).get("ingress", [])
        return ingress[0]["ip"] if ingress else ""
    return wait_until(announced, timeout=30, what=f"{name}'s EXTERNAL-IP")


def announcer(lab: Lab, name: str) -> str:
    """The node announcing the Service's address, as `kubelite describe service` shows it."""
    found = re.search(r"Announced By:\s+(\S+) \(since", lab.kubelite("describe", "service", name).stdout)
    return found.group(1) if found else ""


def in_control_plane(lab: Lab, *args: str) -> subprocess.Popen[str]:
    """A Python snippet run in the control-plane namespace: a client on the lab network outside every node."""
    return subprocess.Popen(["nsenter", f"--net=/run/netns/{lab.plan.control_plane.netns}", sys.executable, *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def fetch(lab: Lab, url: str, n: int, *, interval: float = 0.0, seconds: float = 0.0) -> list[dict[str, Any]]:
    proc = in_control_plane(lab, "-c", FETCH, url, str(n), str(interval), str(seconds))
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    return [json.loads(line) for line in out.splitlines()]


def watch_arp(lab: Lab, ip: str, seconds: float) -> subprocess.Popen[str]:
    return subprocess.Popen(["nsenter", f"--net=/run/netns/{lab.plan.lab_netns}", sys.executable, str(ARPWATCH),
                             "--ip", ip, "--bridge", lab.plan.bridge, "--probe-ip", PROBE_IP,
                             "--seconds", str(seconds)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def arp_replies(lab: Lab, proc: subprocess.Popen[str]) -> list[tuple[float, str]]:
    """(time, node) of every ARP reply the watcher saw, in order."""
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    by_port = {n.lab_port: n.role for n in lab.plan.nodes}
    rows = [json.loads(line) for line in out.splitlines()]
    return [(r["t"], by_port.get(r["port"], r["port"])) for r in rows if "port" in r]


def test_load_balancer_answers_from_outside_the_nodes_and_from_a_pod(demo: Lab) -> None:
    """web-lb's EXTERNAL-IP answers the control-plane namespace (300 requests reach every web pod) and a pod;
    describe names the announcing node, and an Event says so."""
    ip = external_ip(demo, "web-lb")
    assert ip in demo.kubelite("get", "service", "web-lb").stdout
    node = announcer(demo, "web-lb")
    assert node in {n.role for n in demo.plan.nodes}
    events = demo.kubelite("get", "events").stdout
    assert re.search(rf'NodeAssigned\s+service/web-lb\s+announcing {re.escape(ip)} from node "{node}"', events), events
    answers = fetch(demo, f"http://{ip}/", 300)
    counts = collections.Counter(m.group(1) for a in answers for m in [re.match(r"hello from (\S+)", a["body"])] if m)
    assert sum(counts.values()) == 300, [a for a in answers if not a["body"].startswith("hello")][:5]
    names = {p["metadata"]["name"] for p in pods(demo, "app=web") if not p["metadata"].get("deletionTimestamp")}
    assert set(counts) == names, counts
    out = demo.exec_in("client", f"timeout 5 wget -q -O - http://{ip}/")
    assert out.returncode == 0 and "hello from web-" in out.stdout, (out.stdout, out.stderr)


def test_a_restarted_speaker_answers_again_for_its_address(demo: Lab) -> None:
    """Killing the announcing node's speaker: it comes back and answers again (with gratuitous ARP) within
    3 s; no other node answers meanwhile, since its node stayed Ready."""
    ip = external_ip(demo, "web-lb")
    node = announcer(demo, "web-lb")
    watcher = watch_arp(demo, ip, 8)
    time.sleep(1)
    killed_at = time.time()
    demo.kubelite("chaos", "restart", f"speaker-{node}", "--name", demo.name)
    replies = arp_replies(demo, watcher)
    assert {n for _, n in replies} == {node}, replies[:5]
    again = [t for t, _ in replies if t > killed_at + 0.5]
    assert again and again[0] - killed_at <= 3.0, replies[-5:]


def test_stopping_the_announcing_node_moves_the_address_within_six_seconds(demo: Lab) -> None:
    """`chaos stop-node` of the announcing node: another node answers ARP within 6 s, never two at once, and the
    address keeps answering the control-plane namespace."""
    ip = external_ip(demo, "web-lb")
    victim = announcer(demo, "web-lb")
    watcher = watch_arp(demo, ip, 30)
    poller = in_control_plane(demo, "-c", FETCH, f"http://{ip}/", "100000", "0.2", "28")
    time.sleep(2)
    stopped_at = time.time()
    chaos = subprocess.run([KUBELITE, "chaos", "stop-node", victim, "--for", "15", "--name", demo.name],
                           capture_output=True, text=True, timeout=120, env=demo.env)
    assert chaos.returncode == 0, chaos.stderr
    replies = arp_replies(demo, watcher)
    out, _ = poller.communicate(timeout=60)
    polls = [json.loads(line) for line in out.splitlines()]
    order = [node for i, (_, node) in enumerate(replies) if i == 0 or replies[i - 1][1] != node]
    assert len(order) == len(set(order)), f"nodes answered ARP in turns {order}: two at once"
    assert order[0] == victim and len(order) == 2, order
    taken_over = next(t for t, node in replies if node == order[1])
    last_old = max(t for t, node in replies if node == victim and t < taken_over)
    print(f"address moved {victim} -> {order[1]}: answered ARP {taken_over - stopped_at:.2f}s after the stop, "
          f"{taken_over - last_old:.2f}s after {victim}'s last reply; {len(replies)} replies watched")
    assert taken_over - stopped_at <= 6.0, f"{order[1]} answered {taken_over - stopped_at:.1f}s after the stop"
    late = [p for p in polls if p["t"] > stopped_at + 6.0 and not p["body"].startswith("hello from")]
    assert not late, late[:5]
    wait_until(lambda: announcer(demo, "web-lb") == order[1], timeout=10, what="describe naming the new node")
    events = demo.kubelite("get", "events").stdout
    assert f'announcing {ip} from node "{order[1]}" (taken over from "{victim}")' in events, events
    wait_until(lambda: all(ready(p) for p in pods(demo, "app=web")) and len(pods(demo, "app=web")) == 3,
               timeout=90, what="the web pods back")


def test_local_policy_is_announced_where_the_endpoint_runs_and_keeps_the_client_address(demo: Lab) -> None:
    """externalTrafficPolicy Local: only the node running the one endpoint answers ARP, and the backend sees the
    control-plane namespace's own address."""
    for obj in (WHOAMI, WHOAMI_SVC):
        demo.kubelite("apply", "-f", "-", stdin=json.dumps(obj))
    try:
        demo.kubelite("rollout", "status", "deployment/whoami", "--timeout", "90s", timeout=120)
        ip = external_ip(demo, "whoami")
        (pod,) = [p for p in pods(demo, "app=whoami") if not p["metadata"].get("deletionTimestamp")]
        node = pod["spec"]["nodeName"]
        wait_until(lambda: announcer(demo, "whoami") == node, timeout=10, what=f"whoami announced from {node}")
        watcher = watch_arp(demo, ip, 3)
        replies = arp_replies(demo, watcher)
        assert replies and {n for _, n in replies} == {node}, replies[:5]
        answers = fetch(demo, f"http://{ip}/cgi-bin/ip", 10)
        client = str(demo.plan.control_plane.address)
        seen = rf"client \[?(::ffff:)?{re.escape(client)}\]? to whoami-"
        assert all(re.search(seen, a["body"]) for a in answers), answers
    finally:
        demo.kubelite("delete", "deployment", "whoami", "--ignore-not-found")
        demo.kubelite("delete", "service", "whoami", "--ignore-not-found")
