"""Local networking helpers every layer may need."""

from __future__ import annotations

import socket


def free_port(host: str = "127.0.0.1") -> int:
    """A currently free TCP port (for private brokers, clusters and mini-cluster REST ports)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port
