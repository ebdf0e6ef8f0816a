"""One gRPC call to a cluster's port with given credentials, printed as JSON: run inside a network namespace
(`nsenter --net=... python tests/e2e/probe.py ...`) to see what a pod, a node or an intruder there is allowed.

    probe.py TARGET KIND [--ca FILE] [--cert FILE --key FILE] [--token TOKEN]

KIND: etcd (a Range), kubelet (an Exec), apiserver (a List), registry (an HTTPS GET /v2/, plain HTTP without
--ca). Prints {"tcp": bool, "code": ..., "details": ...}:
whether a TCP connection opens at all, and how the call ended (OK or a gRPC status).
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import socket
import ssl
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import grpc  # noqa: E402
from aetcd import rpc  # noqa: E402

from api.pb import api_pb2, api_pb2_grpc  # noqa: E402


def registry_get(host: str, port: int, args: argparse.Namespace) -> dict[str, str]:
    """GET /v2/ of the image registry; UNAVAILABLE when the connection or its handshake fails."""
    if args.ca is None:
        conn = http.client.HTTPConnection(host, port, timeout=5)
    else:
        ctx = ssl.create_default_context(cafile=args.ca)
        if args.cert:
            ctx.load_cert_chain(args.cert, args.key)
        conn = http.client.HTTPSConnection(host, port, timeout=5, context=ctx)
    try:
        conn.request("GET", "/v2/")
        status = conn.getresponse().status
    except (OSError, http.client.HTTPException) as e:
        return {"code": "UNAVAILABLE", "details": f"{type(e).__name__}: {e}"}
    finally:
        conn.close()
    return {"code": "OK" if status == 200 else f"HTTP {status}", "details": ""}


async def call(args: argparse.Namespace) -> dict[str, object]:
    host, port = args.target.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=3).close()
        tcp = True
    except OSError:
        tcp = False
    if args.kind == "registry":
        return {"tcp": tcp, **registry_get(host, int(port), args)}
    read = lambda p: Path(p).read_bytes() if p else None  # noqa: E731
    if args.ca is None:
        channel = grpc.aio.insecure_channel(args.target)
    else:
        channel = grpc.aio.secure_channel(args.target, grpc.ssl_channel_credentials(read(args.ca), read(args.key),
                                                                                    read(args.cert)))
    meta = (("authorization", f"Bearer {args.token}"),) if args.token else ()
    try:
        async with channel:
            if args.kind == "etcd":
                await rpc.KVStub(channel).Range(rpc.RangeRequest(key=b"/", limit=1), timeout=5)
            elif args.kind == "kubelet":
                await api_pb2_grpc.KubeletStub(channel).Exec(
                    api_pb2.ExecRequest(namespace="default", name="nobody", command=["true"]), timeout=5)
            else:
                await api_pb2_grpc.ApiStub(channel).List(api_pb2.ListRequest(resource="pods"), timeout=5,
                                                          metadata=meta)
    except grpc.aio.AioRpcError as e:
        return {"tcp": tcp, "code": e.code().name, "details": e.details() or ""}
    return {"tcp": tcp, "code": "OK", "details": ""}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("target")
    parser.add_argument("kind", choices=["etcd", "kubelet", "apiserver", "registry"])
    parser.add_argument("--ca")
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--token")
    print(json.dumps(asyncio.run(call(parser.parse_args()))))


if __name__ == "__main__":
    main()
