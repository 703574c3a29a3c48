"""Knowing when a client has hung up, so its queued work is dropped before it reaches the model."""

from __future__ import annotations

import socket
from collections.abc import Callable

from flask import request


def peer_closed(sock: socket.socket) -> bool:
    """True when the peer has closed its side (a zero-byte peek); pending request bytes mean it is alive."""
    try:
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except (BlockingIOError, InterruptedError):
        return False  # nothing to read: still connected
    except OSError:
        return True  # reset, or the socket is already closed


def client_gone_check() -> Callable[[], bool] | None:
    """A probe for this request's client, where the server exposes the socket (gunicorn does)."""
    sock = request.environ.get("gunicorn.socket")
    if not isinstance(sock, socket.socket):
        return None  # test client or another server: cannot know
    return lambda: peer_closed(sock)
