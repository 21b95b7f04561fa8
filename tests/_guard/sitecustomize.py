"""Loaded by every Python process started by the tests (this folder is on their PYTHONPATH)."""

import os

if os.environ.get("CORPUSFORGE_SOCKET_GUARD_LOG"):
    import socket_guard

    socket_guard.install()
