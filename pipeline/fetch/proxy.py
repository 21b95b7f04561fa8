"""Which proxy a request goes through: ``--proxy`` or the executor's HTTP_PROXY/HTTPS_PROXY/NO_PROXY.

Settings are read once per fetcher (that is, per task) from the options and the environment of the
process that fetches, never per request. Only ``http://`` proxies are supported: an ``http``
target is sent to the proxy in absolute form (``GET http://host/path``), an ``https`` target goes
through a ``CONNECT host:port`` tunnel and TLS to the target inside it (``pipeline.fetch.http11``).
Credentials in the proxy URL (``http://user:pass@proxy:3128``) are sent as
``Proxy-Authorization: Basic``; :attr:`Proxy.display` is the URL without them, for messages.

The environment is read as curl and Python's ``urllib`` read it: ``http_proxy``, ``https_proxy``
and ``all_proxy`` in lower case first, then upper case (``HTTP_PROXY`` is ignored when
``REQUEST_METHOD`` is set, as in a CGI script, where it could come from a request header);
``NO_PROXY`` lists hosts that are fetched directly: ``*`` (every host), a name (which covers its
subdomains; a leading ``.`` or ``*.`` is ignored), an IP address or a CIDR network (matching URLs
whose host is an address in it), each optionally with ``:port``. ``NO_PROXY`` applies to
``--proxy`` too.
"""

from __future__ import annotations

import base64
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from pipeline.errors import UserInputError

FROM_ENVIRONMENT = "env"
NO_PROXY_VALUES = ("none", "")
_SCHEMES = ("http", "https")


@dataclass(frozen=True)
class Proxy:
    """An ``http://`` proxy: where it listens and the ``Proxy-Authorization`` value, if any."""

    host: str
    port: int
    authorization: str | None = None

    @property
    def display(self) -> str:
        """The proxy's URL without credentials (for messages and logs)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


def parse_proxy(text: str, source: str) -> Proxy:
    """A :class:`Proxy` from a proxy URL (``http://`` assumed when no scheme is given).

    ``source`` names where the URL came from (``--proxy``, ``HTTPS_PROXY``) in the error of a
    malformed one; the error never repeats credentials.
    """
    text = text.strip()
    url = text if "://" in text else "http://" + text
    shown = without_credentials(url)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UserInputError(f"{source} {shown!r} is not a proxy URL: {exc}") from exc
    if parts.scheme.lower() != "http":
        raise UserInputError(f"{source} {shown!r}: only http:// proxies are supported, not {parts.scheme}://")
    if not parts.hostname:
        raise UserInputError(f"{source} {shown!r} has no host")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise UserInputError(f"{source} {shown!r}: a proxy URL has no path")
    authorization = None
    if parts.username is not None:
        user_pass = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        authorization = "Basic " + base64.b64encode(user_pass.encode("utf-8")).decode("ascii")
    return Proxy(parts.hostname.lower(), port or 80, authorization)


def without_credentials(url: str) -> str:
    """``url`` with any ``user:password@`` replaced by ``***@``."""
    scheme, sep, rest = url.partition("://")
    authority, slash, path = rest.partition("/")
    if "@" in authority:
        authority = "***@" + authority.rpartition("@")[2]
    return f"{scheme}{sep}{authority}{slash}{path}"


@dataclass(frozen=True)
class _Bypass:
    """One ``NO_PROXY`` entry: every host, a domain, or an IP network; optionally one port."""

    domain: str | None = None
    network: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None
    port: int | None = None

    def matches(
        self, host: str, address: ipaddress.IPv4Address | ipaddress.IPv6Address | None, port: int
    ) -> bool:
        if self.port is not None and self.port != port:
            return False
        if self.network is not None:
            return address is not None and address in self.network
        if self.domain is None:
            return True  # "*"
        return host == self.domain or host.endswith("." + self.domain)


def _parse_bypass(entry: str) -> _Bypass | None:
    entry = entry.strip().lower()
    if not entry:
        return None
    if entry == "*":
        return _Bypass()
    try:
        return _Bypass(network=ipaddress.ip_network(entry.strip("[]"), strict=False))
    except ValueError:
        pass
    port: int | None = None
    if entry.startswith("["):  # [v6]:port
        address, _, rest = entry[1:].partition("]")
        if rest.startswith(":") and rest[1:].isdigit():
            port = int(rest[1:])
        try:
            return _Bypass(network=ipaddress.ip_network(address, strict=False), port=port)
        except ValueError:
            return None
    name, colon, digits = entry.rpartition(":")
    if colon and digits.isdigit():
        entry, port = name, int(digits)
        try:
            return _Bypass(network=ipaddress.ip_network(entry, strict=False), port=port)
        except ValueError:
            pass
    domain = entry.removeprefix("*").lstrip(".")
    return _Bypass(domain=domain, port=port) if domain else None


@dataclass(frozen=True)
class ProxySettings:
    """The proxy of each scheme and the ``NO_PROXY`` exceptions; built once per fetcher."""

    http: Proxy | None = None
    https: Proxy | None = None
    bypass: tuple[_Bypass, ...] = ()
    source: str = FROM_ENVIRONMENT  # "--proxy" or the environment variable(s) read

    @classmethod
    def resolve(cls, option: str, environ: Mapping[str, str]) -> ProxySettings | None:
        """The settings for ``--proxy option`` in ``environ``; None when nothing goes through a proxy."""
        bypass = tuple(
            rule
            for entry in _env(environ, "no_proxy").split(",")
            if (rule := _parse_bypass(entry)) is not None
        )
        if option.strip().lower() in NO_PROXY_VALUES:
            return None
        if option != FROM_ENVIRONMENT:
            proxy = parse_proxy(option, "--proxy")
            return cls(proxy, proxy, bypass, "--proxy")
        found: dict[str, Proxy | None] = {}
        names = []
        for scheme in _SCHEMES:
            name, value = _env_proxy(environ, scheme)
            found[scheme] = parse_proxy(value, name) if value else None
            if value:
                names.append(name)
        if not any(found.values()):
            return None
        return cls(found["http"], found["https"], bypass, "/".join(dict.fromkeys(names)))

    def proxy_for(self, scheme: str, host: str, port: int) -> Proxy | None:
        """The proxy a request to ``scheme://host:port`` goes through, or None (direct)."""
        proxy = self.https if scheme == "https" else self.http
        if proxy is None or not self.bypass:
            return proxy
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            address = None
        host = host.rstrip(".")
        if any(rule.matches(host, address, port) for rule in self.bypass):
            return None
        return proxy

    def describe(self) -> str:
        """A one-line account for logs (no credentials)."""
        parts = [f"{s} via {p.display}" for s, p in (("http", self.http), ("https", self.https)) if p]
        bypass = f", {len(self.bypass)} NO_PROXY entries" if self.bypass else ""
        return f"{', '.join(parts)} (from {self.source}{bypass})"


def _env(environ: Mapping[str, str], name: str) -> str:
    return environ.get(name.lower()) or environ.get(name.upper()) or ""


def _env_proxy(environ: Mapping[str, str], scheme: str) -> tuple[str, str]:
    """(variable name, value) of the proxy for ``scheme``, or ("", "")."""
    candidates = [f"{scheme}_proxy", f"{scheme.upper()}_PROXY", "all_proxy", "ALL_PROXY"]
    if scheme == "http" and "REQUEST_METHOD" in environ:
        candidates.remove("HTTP_PROXY")  # "httpoxy": in a CGI context it can come from a request header
    for name in candidates:
        value = environ.get(name, "").strip()
        if value:
            return name, value
    return "", ""
