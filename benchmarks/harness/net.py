"""Loopback networking for the benchmarks: every request they make goes to 127.0.0.1."""

from __future__ import annotations

import urllib.request

from testkit.net import free_port

__all__ = ["LOOPBACK", "LOOPBACK_ENV", "free_port", "loopback_opener"]

LOOPBACK = "127.0.0.1"
# For child processes (spark-submit, img2dataset): no proxy for loopback, Spark bound to loopback.
LOOPBACK_ENV = {
    "no_proxy": "127.0.0.1,localhost",
    "NO_PROXY": "127.0.0.1,localhost",
    "SPARK_LOCAL_IP": LOOPBACK,
}


def loopback_opener() -> urllib.request.OpenerDirector:
    """A urllib opener that ignores proxy settings (a loopback request never goes through one)."""
    return urllib.request.build_opener(urllib.request.ProxyHandler({}))
