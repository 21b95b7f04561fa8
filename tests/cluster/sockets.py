"""Which addresses a set of processes has sockets on, read from Linux ``/proc`` (JVMs included).

The socket guard (tests/_guard) covers Python processes only; this covers the Spark daemons,
drivers and executors too: every TCP/UDP socket of theirs must be bound to, and connected to,
a loopback address. A socket bound to the wildcard address would accept connections from
outside, so it counts as leaving loopback as well.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

TABLES = ("tcp", "tcp6", "udp", "udp6")
LISTEN = "0A"


@dataclass(frozen=True)
class Endpoint:
    """One socket: protocol, local and remote address (remote is unspecified when not connected)."""

    protocol: str
    local: str
    remote: str
    state: str

    def loopback_only(self) -> bool:
        local = _host(self.local)
        remote = _host(self.remote)
        return _is_loopback(local) and (remote.is_unspecified or _is_loopback(remote))


def _host(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(address.rsplit(":", 1)[0].strip("[]"))


def _is_loopback(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback


def _decode(hex_address: str) -> str:
    host, port = hex_address.split(":")
    raw = bytes.fromhex(host)
    # /proc/net prints each 32-bit word of the address in host (little-endian) order.
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    address = ipaddress.ip_address(words)
    return f"[{address}]:{int(port, 16)}" if address.version == 6 else f"{address}:{int(port, 16)}"


def _sockets_by_inode() -> dict[str, Endpoint]:
    found = {}
    for table in TABLES:
        with contextlib.suppress(OSError):
            lines = (Path("/proc/net") / table).read_text().splitlines()[1:]
            for line in lines:
                fields = line.split()
                found[fields[9]] = Endpoint(table, _decode(fields[1]), _decode(fields[2]), fields[3])
    return found


def endpoints(pids: list[int]) -> dict[int, list[Endpoint]]:
    """The inet sockets each process holds (processes that are gone are left out)."""
    table = _sockets_by_inode()
    held: dict[int, list[Endpoint]] = {}
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in os.scandir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    target = os.readlink(fd.path)
                    if target.startswith("socket:[") and target[8:-1] in table:
                        held.setdefault(pid, []).append(table[target[8:-1]])
    return held


def outside_loopback(pids: list[int]) -> list[str]:
    """Sockets of ``pids`` bound to or connected to an address that is not loopback, described."""
    return [
        f"pid {pid}: {e.protocol} {e.local} -> {e.remote} (state {e.state})"
        for pid, held in endpoints(pids).items()
        for e in held
        if not e.loopback_only()
    ]
