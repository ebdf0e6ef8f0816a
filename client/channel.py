"""One place that opens a gRPC channel to the apiserver (plain, TLS, or a unix socket)."""

from __future__ import annotations

from pathlib import Path

import grpc

from client.config import ClientConfig

# Lists of thousands of pods exceed gRPC's 4 MiB default.
MAX_MESSAGE = 512 * 1024 * 1024

OPTIONS = [
    ("grpc.max_receive_message_length", MAX_MESSAGE),
    ("grpc.max_send_message_length", 16 * 1024 * 1024),
    ("grpc.keepalive_time_ms", 10000),
    ("grpc.keepalive_timeout_ms", 5000),
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


def open_channel(config: ClientConfig) -> grpc.aio.Channel:
    if config.ca_file and not config.server.startswith("unix:"):
        creds = grpc.ssl_channel_credentials(Path(config.ca_file).read_bytes())
        return grpc.aio.secure_channel(config.server, creds, options=OPTIONS)
    return grpc.aio.insecure_channel(config.server, options=OPTIONS)
