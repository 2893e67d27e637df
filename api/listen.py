"""A listening socket bound before the server starts: a taken port is one line, not a
traceback, and the address is known before the first request."""

from __future__ import annotations

import errno
import socket
import sys

DEFAULT_PORT = 2024
_TRIES = 50


def listen(command: str, host: str, port: int | None, default: int = DEFAULT_PORT) -> socket.socket:
    """A bound socket: the requested port, or `default` and up when none was requested."""
    if port is not None:
        try:
            return bind(host, port)
        except OSError as exc:
            sys.exit(
                f"broker {command}: cannot listen on {host}:{port} ({exc.strerror}); "
                "pass another --port"
            )
    for candidate in range(default, default + _TRIES):
        try:
            sock = bind(host, candidate)
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            continue
        if candidate != default:
            print(f"  Port {default} is in use; using {candidate} instead.", file=sys.stderr)
        return sock
    sys.exit(f"broker {command}: ports {default}-{default + _TRIES - 1} are all taken; pass --port")


def bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock
