"""Refuse (and record) any socket connect outside loopback, in this process and its children.

Installed by tests/conftest.py in the test process, and through sitecustomize.py (this folder is
put on PYTHONPATH) in every Python process the tests start, Spark's workers included. A refused
connect raises, and is appended to $CORPUSFORGE_SOCKET_GUARD_LOG so the test session fails even
when the code under test swallows the error.
"""

from __future__ import annotations

import ipaddress
import os
import socket

_original_connect = socket.socket.connect
_original_connect_ex = socket.socket.connect_ex


class NonLoopbackConnect(PermissionError):
    """A test tried to reach an address outside loopback."""


def _allowed(sock: socket.socket, address: object) -> bool:
    if sock.family == getattr(socket, "AF_UNIX", None):
        return True
    if not isinstance(address, tuple) or not address:
        return False
    host = str(address[0]).split("%", 1)[0]
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # names must be resolved by the code under test first


def _record(address: object) -> None:
    log = os.environ.get("CORPUSFORGE_SOCKET_GUARD_LOG")
    if log:
        with open(log, "a", encoding="utf-8") as handle:
            handle.write(f"pid {os.getpid()} tried to connect to {address!r}\n")


def _guarded_connect(self: socket.socket, address: object) -> None:
    if not _allowed(self, address):
        _record(address)
        raise NonLoopbackConnect(f"socket guard: connect to {address!r} outside loopback refused")
    return _original_connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: object) -> int:
    if not _allowed(self, address):
        _record(address)
        raise NonLoopbackConnect(f"socket guard: connect to {address!r} outside loopback refused")
    return _original_connect_ex(self, address)


def install() -> None:
    socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]
