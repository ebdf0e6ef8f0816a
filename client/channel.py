"""One place that opens a gRPC channel to the apiserver: mutual TLS over TCP or a unix socket (plaintext only for
tests that ask for it)."""

from __future__ import annotations

import grpc

from client.config import ClientConfig, grpc_target
from client.tls import ClientCredentials, server_name_options

# Lists of thousands of pods exceed gRPC's 4 MiB default.
MAX_MESSAGE = 512 * 1024 * 1024

OPTIONS = [
    ("grpc.max_receive_message_length", MAX_MESSAGE),
    ("grpc.max_send_message_length", 16 * 1024 * 1024),
    # An HTTP/2 ping every 2 s, answered within 2 s: an apiserver whose machine is cut off drops packets without
    # a word, and only the missing answer says so; then pick_first moves to the next listed apiserver (within
    # 4 s of the cut; with 10 s + 5 s a client waited up to 15 s). The apiserver allows pings every 1 s.
    ("grpc.keepalive_time_ms", 2000),
    ("grpc.keepalive_timeout_ms", 2000),
    # How long gRPC core waits for any ping's answer (its BDP pings too), whatever the keepalive timeout (60 s).
    ("grpc.http2.ping_timeout_ms", 2000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.enable_retries", 0),
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 2000),
    # Each channel its own connections: otherwise a new Client shares the process-wide subchannel of
    # an earlier one and, right after an apiserver restart, fails at once with that subchannel's stale
    # "connection refused" until its reconnect backoff runs out.
    ("grpc.use_local_subchannel_pool", 1),
]


def open_channel(config: ClientConfig, creds: ClientCredentials | None = None) -> grpc.aio.Channel:
    """A channel to `config.server` (one apiserver, or several to fail over between); `creds` (made from `config`
    when not given) unless plaintext was asked for."""
    target = grpc_target(config.server)
    if config.insecure_plaintext:
        return grpc.aio.insecure_channel(target, options=OPTIONS)
    creds = creds or ClientCredentials(config)
    return grpc.aio.secure_channel(target, creds.channel_credentials(),
                                   options=[*OPTIONS, *server_name_options(config)])
