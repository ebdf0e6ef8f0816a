"""Node certificates: who may ask for which, and their signing with the cluster CA.

A node asks with a join token (its first certificates, any node name, as a
kubeadm bootstrap token allows) or as itself (`system:node:<name>` renewing
its own); an admin (system:masters) may ask for any node. Each request
carries a CSR made from a key the node keeps: the kubelet's client
certificate (`system:node:<name>` in `system:nodes`), its serving certificate
(the same subject; SANs: the node's name and addresses), and the proxy's
(`system:kube-proxy`). Anything else in a CSR is refused, naming the field.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from api import names
from api.errors import FieldError, ForbiddenError, InvalidError, UnavailableError
from api.pb import api_pb2
from apiserver.authn import UserInfo
from client import pki, tokens

NODES = "system:nodes"
MASTERS = "system:masters"
PROXY = pki.Identity("system:kube-proxy")


def node_identity(node: str) -> pki.Identity:
    return pki.Identity(f"system:node:{node}", (NODES,))


def check_caller(user: UserInfo, node: str) -> None:
    """Raise ForbiddenError unless `user` may ask for node `node`'s certificates."""
    if MASTERS in user.groups or tokens.BOOTSTRAPPERS in user.groups:
        return
    if user.name == f"system:node:{node}" and NODES in user.groups:
        return
    raise ForbiddenError(f'{user.name} may not ask for the certificates of node "{node}"')


def plan_requests(node: str, fields: dict[str, pki.SigningRequest]) -> dict[str, pki.Request]:
    """What each CSR (by request field) may be issued as; InvalidError names every field that asks for more."""
    errs: list[FieldError] = []
    if why := names.dns1123_subdomain(node):
        errs.append(FieldError("nodeName", "Invalid value", why, node))
        raise InvalidError(errs)
    want = {"clientCsr": node_identity(node), "servingCsr": node_identity(node), "proxyCsr": PROXY}
    out: dict[str, pki.Request] = {}
    for field, csr in fields.items():
        if csr.identity != want[field]:
            errs.append(FieldError(f"{field}.subject", "Invalid value", f"must be {want[field]}", str(csr.identity)))
            continue
        if field == "servingCsr":
            extra = [d for d in csr.dns if d != node]
            if extra:
                errs.append(FieldError(f"{field}.dnsNames", "Invalid value", f"only the node's name, {node!r}",
                                       extra))
                continue
            if not csr.ips:
                errs.append(FieldError(f"{field}.ipAddresses", "Required value", "the node's addresses"))
                continue
            out[field] = pki.Request(csr.identity, (pki.SERVER,), dns=csr.dns, ips=csr.ips)
        else:
            if csr.dns or csr.ips:
                errs.append(FieldError(f"{field}.subjectAltNames", "Forbidden", "a client certificate names no host"))
                continue
            out[field] = pki.Request(csr.identity, (pki.CLIENT,))
    if errs:
        raise InvalidError(errs)
    if not out:
        raise InvalidError([FieldError("clientCsr", "Required value", "no certificate request given")])
    return out


@dataclass(frozen=True)
class SignerConfig:
    cert_file: str = ""  # the cluster CA and its key (--cluster-signing-cert-file / -key-file)
    key_file: str = ""
    lifetime: datetime.timedelta = pki.YEAR  # --cluster-signing-duration


class NodeSigner:
    """Signs nodes' certificate requests with the cluster CA."""

    def __init__(self, config: SignerConfig) -> None:
        self.config = config
        self.ca = pki.CertificateAuthority.load(config.cert_file, config.key_file) if config.cert_file else None

    def sign(self, user: UserInfo | None, req: api_pb2.NodeCertificatesRequest) -> api_pb2.NodeCertificatesResponse:
        if self.ca is None:
            raise UnavailableError("this apiserver signs no certificates (it was started without "
                                   "--cluster-signing-cert-file)")
        if user is None:
            raise ForbiddenError("an anonymous caller may not ask for node certificates")
        check_caller(user, req.node_name)
        decoded: dict[str, pki.SigningRequest] = {}
        errs: list[FieldError] = []
        for field, pem in (("clientCsr", req.client_csr), ("servingCsr", req.serving_csr),
                           ("proxyCsr", req.proxy_csr)):
            if pem:
                try:
                    decoded[field] = pki.read_csr(pem, field)
                except pki.CertificateError as e:
                    errs.append(FieldError(field, "Invalid value", str(e)))
        if errs:
            raise InvalidError(errs)
        plan = plan_requests(req.node_name, decoded)
        out = api_pb2.NodeCertificatesResponse(ca_certificate=pki.cert_pem(self.ca.cert))
        for field, request in plan.items():
            cert = pki.cert_pem(self.ca.issue(decoded[field].public_key, request, lifetime=self.config.lifetime))
            setattr(out, {"clientCsr": "client_certificate", "servingCsr": "serving_certificate",
                          "proxyCsr": "proxy_certificate"}[field], cert)
        return out
