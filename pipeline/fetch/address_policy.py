"""Which IP addresses may be fetched: public ones only, unless explicitly allowed (SSRF guard)."""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass

from pipeline.errors import ErrorClass, SampleError, UserInputError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Cloud metadata endpoints that are reachable from instances; refused even if a network
# containing them is allowed, unless listed exactly.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "169.254.170.2", "100.100.100.200", "fd00:ec2::254")
)


@dataclass(frozen=True)
class AddressPolicy:
    """Refuses loopback, private, link-local, reserved, multicast and metadata addresses.

    ``allowed_networks`` are exceptions the user asked for (``--allow-network 127.0.0.1/32``),
    used by tests and the demo to reach a local server.
    """

    allowed_networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def from_strings(cls, networks: list[str] | tuple[str, ...]) -> AddressPolicy:
        """Build a policy from CIDR strings, with a clear error for a malformed one."""
        parsed = []
        for text in networks:
            try:
                parsed.append(ipaddress.ip_network(text, strict=False))
            except ValueError as exc:
                raise UserInputError(f"--allow-network {text!r} is not an IP network: {exc}") from exc
        return cls(tuple(parsed))

    def is_allowed(self, address: IPAddress) -> bool:
        """True when ``address`` may be connected to."""
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        explicitly = any(address in net for net in self.allowed_networks)
        if address in METADATA_ADDRESSES:
            return any(net.num_addresses == 1 and address in net for net in self.allowed_networks)
        if explicitly:
            return True
        return address.is_global and not address.is_multicast

    def check_address(self, address: str, host: str) -> None:
        """Raise ``SampleError(ADDRESS_REFUSED)`` unless ``address`` (resolved from ``host``) is allowed."""
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        if not self.is_allowed(ip):
            raise SampleError(
                ErrorClass.ADDRESS_REFUSED,
                f"{host} resolves to {ip}, a non-public address (pass --allow-network to permit it)",
            )

    def check_host_literal(self, host: str) -> bool:
        """Check a URL host that is an IP address in any notation; return True if it was one.

        Besides standard notation this catches the legacy numeric forms that resolvers accept
        (``2130706433``, ``0177.0.0.1``, ``0x7f.1``, ``127.1``), so they cannot slip past the check.
        """
        bare = host.strip("[]")
        try:
            ip = ipaddress.ip_address(bare.split("%", 1)[0])
        except ValueError:
            ip = _legacy_ipv4(bare)
            if ip is None:
                return False
            if not self.is_allowed(ip):
                raise SampleError(
                    ErrorClass.ADDRESS_REFUSED,
                    f"host {host!r} is a numeric form of {ip}, a non-public address",
                ) from None
            raise SampleError(
                ErrorClass.INVALID_URL, f"host {host!r} is a non-canonical numeric IPv4 address"
            ) from None
        if not self.is_allowed(ip):
            raise SampleError(
                ErrorClass.ADDRESS_REFUSED,
                f"{ip} is a non-public address (pass --allow-network to permit it)",
            )
        return True


def _legacy_ipv4(host: str) -> ipaddress.IPv4Address | None:
    if not host or not all(c in "0123456789abcdefxABCDEFX." for c in host):
        return None
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None
