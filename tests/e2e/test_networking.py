"""Ingress, traffic policies and ExternalName on a 3-node lab, driven through the CLI as a user would.

Every lab node runs `kubelite ingress` (nginx on the node's ports 80 and 443). Backends are busybox httpd
pods; a CGI script answers the caller's address, so a test can see whether a source was kept.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from .lab import Lab, pods, ready, wait_until

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "localhost:5000/kubelite/busybox:1.35"
IMAGE_V3 = "localhost:5000/kubelite/busybox:v3"

# httpd serving /<app-name files> ("<app> <pod name>") and /cgi-bin/ip (the caller's address).
SCRIPT = ('mkdir -p /tmp/www/cgi-bin && for p in bar foo testpath; do echo "$APP $(hostname)" > /tmp/www/$p; done'
          ' && printf "#!/bin/sh\\necho Content-Type: text/plain\\necho\\necho \\$REMOTE_ADDR\\n" > /tmp/www/cgi-bin/ip'
          " && chmod +x /tmp/www/cgi-bin/ip && exec httpd -f -p 8080 -h /tmp/www")


def deployment(app: str, replicas: int = 2, *, node: str = "") -> dict:
    spec: dict = {
        "terminationGracePeriodSeconds": 1,
        "containers": [{"name": "web", "image": IMAGE, "command": ["sh", "-c"], "args": [SCRIPT],
                        "env": [{"name": "APP", "value": app}],
                        "ports": [{"name": "http", "containerPort": 8080}],
                        "readinessProbe": {"httpGet": {"path": "/bar", "port": "http"}, "periodSeconds": 1}}],
    }
    if node:
        spec["nodeSelector"] = {"kubernetes.io/hostname": node}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": app, "labels": {"app": app}},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": app}},
                     "template": {"metadata": {"labels": {"app": app}}, "spec": spec}}}


def service(name: str, app: str, **spec: object) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"selector": {"app": app}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}], **spec}}


# The Kubernetes documentation's minimal Ingress and its IngressClass, as published (the class points at
# kubelite's controller instead of ingress-nginx).
MINIMAL = textwrap.dedent("""\
    apiVersion: networking.k8s.io/v1
    kind: IngressClass
    metadata:
      name: nginx-example
    spec:
      controller: kubelite.dev/ingress-nginx
    ---
    apiVersion: networking.k8s.io/v1
    kind: Ingress
    metadata:
      name: minimal-ingress
      annotations:
        nginx.ingress.kubernetes.io/rewrite-target: /
    spec:
      ingressClassName: nginx-example
      rules:
      - http:
          paths:
          - path: /testpath
            pathType: Prefix
            backend:
              service:
                name: test
                port:
                  number: 80
    """)

FANOUT = {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "fanout"}, "spec": {
    "rules": [{"host": "foo.example", "http": {"paths": [
        {"path": "/bar", "pathType": "Prefix", "backend": {"service": {"name": "bar", "port": {"number": 80}}}},
        {"path": "/foo", "pathType": "Prefix", "backend": {"service": {"name": "foo", "port": {"number": 80}}}}]}}]}}


def apply(lab: Lab, *docs: dict | str) -> None:
    text = "\n---\n".join(d if isinstance(d, str) else json.dumps(d) for d in docs)
    lab.kubelite("apply", "-f", "-", stdin=text)


def in_lab(lab: Lab, script: str, *args: str, timeout: float = 60) -> str:
    """Run a Python script in the control plane's namespace (on the lab network, like any other host there)."""
    r = subprocess.run(["nsenter", f"--net=/run/netns/{lab.plan.control_plane.netns}", "--", sys.executable, "-c",
                        script, *args], capture_output=True, text=True, timeout=timeout, check=True)
    return r.stdout


@pytest.fixture(scope="module")
def backends(lab: Lab) -> Iterator[Lab]:
    """Deployments foo and bar with their Services, `test` (the minimal Ingress's backend, on foo's pods), and a
    client pod."""
    lab.kubelite("apply", "-f", str(ROOT / "examples" / "client.yaml"))
    apply(lab, deployment("foo"), deployment("bar"), service("foo", "foo"), service("bar", "bar"),
          service("test", "foo"))
    for app in ("foo", "bar"):
        lab.kubelite("rollout", "status", f"deployment/{app}", "--timeout", "120s", timeout=150)
    lab.kubelite("wait", "--for=condition=Ready", "pod/client", "--timeout", "90", timeout=120)
    yield lab
    # The client pod goes too: a bare pod would stop a later drain of its node.
    for kind, names in (("ingress", "fanout,minimal-ingress,secure"), ("deployment", "foo,bar,local"),
                        ("service", "foo,bar,test,local,alias"), ("secret", "secure-tls"),
                        ("ingressclass", "nginx-example"), ("pod", "client")):
        for name in names.split(","):
            lab.kubelite("delete", kind, name, check=False)


def node_ip(lab: Lab, role: str = "n1") -> str:
    return str(lab.plan.node(role).address)


def get(lab: Lab, url: str, host: str = "") -> tuple[int, str]:
    """One request from the client pod: (wget's exit code, body)."""
    header = f"--header 'Host: {host}' " if host else ""
    r = lab.exec_in("client", f"timeout 5 wget -q -O - {header}{url}", timeout=30)
    return r.returncode, r.stdout


def test_minimal_ingress_and_host_and_path_routing(backends: Lab) -> None:
    """The documentation's minimal Ingress answers /testpath from its backend (its rewrite-target annotation is
    reported as having no effect); Host foo.example routes /bar to bar and /foo to foo, from a client pod, on
    every node; the Ingresses' status lists the nodes."""
    lab = backends
    apply(lab, MINIMAL, FANOUT)
    for role in ("n1", "n2", "n3"):
        got = wait_until(lambda r=role: get(lab, f"http://{node_ip(lab, r)}/bar", "foo.example"), timeout=20,
                         what=f"foo.example/bar on {role}")
        assert got[0] == 0 and got[1].startswith("bar bar-"), got
    assert get(lab, f"http://{node_ip(lab)}/foo", "foo.example")[1].startswith("foo foo-")
    assert get(lab, f"http://{node_ip(lab)}/testpath")[1].startswith("foo foo-")
    assert get(lab, f"http://{node_ip(lab)}/bar", "other.example")[0] != 0  # 404: no rule for that host
    status = wait_until(lambda: lab.get_json("ingress", "fanout").get("status", {}).get("loadBalancer", {}).get(
        "ingress"), timeout=10, what="status.loadBalancer")
    assert sorted(i["ip"] for i in status) == sorted(node_ip(lab, r) for r in ("n1", "n2", "n3"))
    listed = lab.kubelite("get", "ingress").stdout.splitlines()
    assert listed[0].split() == ["NAME", "CLASS", "HOSTS", "ADDRESS", "PORTS", "AGE"]
    events = lab.kubelite("describe", "ingress", "minimal-ingress").stdout
    assert "AnnotationUnsupported" in events and "rewrite-target" in events


POLL = r"""
import http.client, sys, time
ip, host, path, want = sys.argv[1:5]
t0 = time.monotonic()
while time.monotonic() - t0 < 15:
    try:
        c = http.client.HTTPConnection(ip, 80, timeout=2)
        c.request("GET", path, headers={"Host": host})
        body = c.getresponse().read().decode()
        if body.startswith(want):
            print(round(time.monotonic() - t0, 3)); break
    except OSError:
        pass
    time.sleep(0.02)
else:
    print("never")
"""


def test_an_ingress_change_takes_effect_within_two_seconds(backends: Lab) -> None:
    """Pointing foo.example/bar at the foo Service is served by foo within 2 s of the update."""
    lab = backends
    apply(lab, FANOUT)
    wait_until(lambda: get(lab, f"http://{node_ip(lab)}/bar", "foo.example")[1].startswith("bar "), timeout=20,
               what="bar serving")
    changed = json.loads(json.dumps(FANOUT))
    changed["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"] = "foo"
    try:
        apply(lab, changed)
        took = in_lab(lab, POLL, node_ip(lab), "foo.example", "/bar", "foo ").strip()
        assert took != "never" and float(took) < 2.0, took
    finally:
        apply(lab, FANOUT)


def test_no_request_fails_during_a_rollout(backends: Lab) -> None:
    """A request loop from the client pod through the Ingress while bar rolls to a new image: every request
    succeeds, and both the old and the new pods answered."""
    lab = backends
    apply(lab, FANOUT)
    wait_until(lambda: get(lab, f"http://{node_ip(lab)}/bar", "foo.example")[1].startswith("bar "), timeout=20,
               what="bar serving")
    old = {p["metadata"]["name"] for p in pods(lab, "app=bar")}
    lab.tag_image(IMAGE, IMAGE_V3)
    loop = subprocess.Popen(
        [*lab_exec(lab), "client", "--timeout", "120", "--", "sh", "-c",
         f"date +%s; end=$(($(date +%s)+45)); n=0; while [ $(date +%s) -lt $end ]; do n=$((n+1)); "
         f"r=$(timeout 5 wget -q -O - --header 'Host: foo.example' http://{node_ip(lab)}/bar 2>&1) && echo \"$r\" "
         f"|| echo \"FAILED at $(date +%s) $r\"; done; "
         "echo TOTAL $n"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=lab.env)
    try:
        time.sleep(3)
        lab.kubelite("set", "image", "deployment/bar", f"web={IMAGE_V3}")
        lab.kubelite("rollout", "status", "deployment/bar", "--timeout", "120s", timeout=150)
        out, _ = loop.communicate(timeout=120)
    finally:
        if loop.poll() is None:
            loop.kill()
    lines = out.splitlines()
    answered = {line.split()[1] for line in lines if line.startswith("bar ")}
    if "FAILED" in out:  # say when (the loop's first line is its start) and what the daemons saw meanwhile
        print(lab.logs_text(300))
    assert "FAILED" not in out, [line for line in lines if not line.startswith("bar ")][:10]
    total = int(lines[-1].split()[1])
    assert total > 50 and len([line for line in lines if line.startswith("bar ")]) == total, lines[-5:]
    new = {p["metadata"]["name"] for p in pods(lab, "app=bar") if ready(p)}
    assert answered & old and answered & new, (answered, old, new)


def lab_exec(lab: Lab) -> list[str]:
    from .lab import KUBELITE

    return [KUBELITE, "exec"]


def self_signed(host: str) -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
            .sign(key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))


HTTPS = r"""
import hashlib, http.client, json, socket, ssl, sys
ip, sni = sys.argv[1], sys.argv[2]
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
try:
    s = ctx.wrap_socket(socket.create_connection((ip, 443), timeout=5), server_hostname=sni)
    digest = hashlib.sha256(s.getpeercert(binary_form=True)).hexdigest()
    c = http.client.HTTPConnection(ip, 443, timeout=5); c.sock = s
    c.request("GET", "/bar", headers={"Host": sni})
    print(json.dumps([digest, c.getresponse().read().decode()]))
except (ssl.SSLError, OSError) as e:
    print(json.dumps(["refused", type(e).__name__]))
"""


def test_tls_ingress_answers_with_the_secrets_certificate(backends: Lab, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A TLS Ingress over `kubelite create secret tls`: HTTPS to foo.example presents that certificate and routes
    to bar; a name without a certificate is refused at the handshake."""
    lab = backends
    cert, key = self_signed("secure.example")
    (tmp_path / "tls.crt").write_bytes(cert)
    (tmp_path / "tls.key").write_bytes(key)
    lab.kubelite("create", "secret", "tls", "secure-tls", "--cert", str(tmp_path / "tls.crt"), "--key",
                 str(tmp_path / "tls.key"))
    tls = json.loads(json.dumps(FANOUT))
    tls["metadata"]["name"] = "secure"
    tls["spec"]["rules"][0]["host"] = "secure.example"
    tls["spec"]["tls"] = [{"hosts": ["secure.example"], "secretName": "secure-tls"}]
    apply(lab, tls)
    der = x509.load_pem_x509_certificate(cert).public_bytes(serialization.Encoding.DER)

    def served() -> list | None:
        got = json.loads(in_lab(lab, HTTPS, node_ip(lab, "n2"), "secure.example"))
        return got if got[0] == hashlib.sha256(der).hexdigest() else None

    _, body = wait_until(served, timeout=20, what="the Secret's certificate on secure.example")
    assert body.startswith("bar bar-")
    assert json.loads(in_lab(lab, HTTPS, node_ip(lab, "n2"), "unknown.example"))[0] == "refused"


def test_external_traffic_policy_local_on_a_node_port(backends: Lab) -> None:
    """externalTrafficPolicy Local: the node port of the node running the endpoint answers and the pod sees the
    client pod's address; a node without an endpoint drops the connection, and its health-check port answers
    503 (200 on the endpoint's node)."""
    lab = backends
    apply(lab, deployment("local", 1, node="n1"), service("local", "local", type="LoadBalancer",
                                                          externalTrafficPolicy="Local"))
    lab.kubelite("rollout", "status", "deployment/local", "--timeout", "120s", timeout=150)
    svc = lab.get_json("service", "local")
    node_port = svc["spec"]["ports"][0]["nodePort"]
    health = svc["spec"]["healthCheckNodePort"]
    client_ip = lab.get_json("pod", "client")["status"]["podIP"]
    got = wait_until(lambda: get(lab, f"http://{node_ip(lab, 'n1')}:{node_port}/cgi-bin/ip"), timeout=20,
                     what="the node port on n1")
    # httpd listens on a dual-stack socket: it writes the IPv4 caller as [::ffff:a.b.c.d].
    assert got[0] == 0 and got[1].strip().removeprefix("[::ffff:").removesuffix("]") == client_ip, got
    t0 = time.monotonic()
    code, _ = get(lab, f"http://{node_ip(lab, 'n2')}:{node_port}/cgi-bin/ip")
    assert code != 0 and time.monotonic() - t0 > 4  # dropped: wget waited for the 5 s timeout
    check = r"""
import sys, urllib.error, urllib.request
try:
    print(urllib.request.urlopen(f"http://{sys.argv[1]}:{sys.argv[2]}/", timeout=5).status)
except urllib.error.HTTPError as e:
    print(e.code)
"""
    assert in_lab(lab, check, node_ip(lab, "n1"), str(health)).strip() == "200"
    assert in_lab(lab, check, node_ip(lab, "n2"), str(health)).strip() == "503"


def test_external_name_resolves_as_a_cname(backends: Lab) -> None:
    """An ExternalName Service resolves from a pod as a CNAME; naming a Service of the cluster, it also leads to
    that Service's address and answers through it."""
    lab = backends
    apply(lab, {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "alias"},
                "spec": {"type": "ExternalName", "externalName": "bar.default.svc.cluster.local"}})
    bar_ip = lab.get_json("service", "bar")["spec"]["clusterIP"]
    out = lab.exec_in("client", "nslookup -type=cname alias.default.svc.cluster.local").stdout
    assert "canonical name = bar.default.svc.cluster.local" in out, out
    out = lab.exec_in("client", "nslookup alias.default.svc.cluster.local").stdout
    assert bar_ip in out, out
    code, body = get(lab, "http://alias/bar")
    assert code == 0 and body.startswith("bar bar-"), body
