"""DNS resolution with a per-process TTL cache and the address policy applied to every answer.

Uncached lookups are the main cause of low success rates in large crawls (every request asks the
system resolver again). The cache lives at module level so every task in one Python worker
(Spark reuses workers) shares it.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from pipeline.errors import ErrorClass, SampleError
from pipeline.fetch.address_policy import AddressPolicy

GetAddrInfo = Callable[[str, int, int], list[tuple[Any, ...]]]

_NEGATIVE_TTL = 30.0
_MAX_ENTRIES = 100_000


class DnsCache:
    """Bounded LRU cache of getaddrinfo answers (or failures) with expiry."""

    def __init__(self, max_entries: int = _MAX_ENTRIES) -> None:
        self._entries: OrderedDict[tuple[str, int, int], tuple[float, object]] = OrderedDict()
        self._max = max_entries

    def get(self, key: tuple[str, int, int]) -> object | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, value = entry
        if expires < time.monotonic():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return value

    def put(self, key: tuple[str, int, int], value: object, ttl: float) -> None:
        self._entries[key] = (time.monotonic() + ttl, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()


PROCESS_DNS_CACHE = DnsCache()


class PolicyResolver:
    """Cached lookups, refusing hosts with any non-permitted address.

    Refusing the whole host when any answer is private defeats DNS answers that mix a public and
    a private address. ``getaddrinfo`` can be replaced in tests to simulate any DNS answer.
    """

    def __init__(
        self,
        policy: AddressPolicy,
        ttl: float,
        cache: DnsCache = PROCESS_DNS_CACHE,
        getaddrinfo: GetAddrInfo | None = None,
    ) -> None:
        self._policy = policy
        self._ttl = ttl
        self._cache = cache
        self._getaddrinfo = getaddrinfo

    async def resolve(
        self, host: str, port: int = 0, family: int = socket.AF_UNSPEC
    ) -> list[tuple[int, str]]:
        """``(family, address)`` pairs for ``host``, every one allowed by the policy, in answer order."""
        key = (host, port, int(family))
        cached = self._cache.get(key) if self._ttl > 0 else None
        if cached is None:
            try:
                infos = await self._lookup(host, port, family)
                cached = infos
            except (OSError, UnicodeError) as exc:
                cached = SampleError(ErrorClass.DNS_ERROR, f"cannot resolve {host}: {exc}")
            if self._ttl > 0:
                ttl = self._ttl if isinstance(cached, list) else min(self._ttl, _NEGATIVE_TTL)
                self._cache.put(key, cached, ttl)
        if isinstance(cached, SampleError):
            raise SampleError(cached.error_class, cached.message)
        results: list[tuple[int, str]] = []
        for fam, _type, _proto, _canon, sockaddr in cached:  # type: ignore[union-attr]
            address = sockaddr[0]
            self._policy.check_address(address, host)
            if (fam, address) not in results:
                results.append((fam, address))
        if not results:
            raise SampleError(ErrorClass.DNS_ERROR, f"{host} has no addresses")
        return results

    async def _lookup(self, host: str, port: int, family: int) -> list[tuple[Any, ...]]:
        if self._getaddrinfo is not None:
            return self._getaddrinfo(host, port, family)
        loop = asyncio.get_running_loop()
        return await loop.getaddrinfo(host, port, family=family, type=socket.SOCK_STREAM)
