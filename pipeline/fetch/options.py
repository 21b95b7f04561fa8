"""Options of the HTTP fetcher."""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass

from pipeline import __version__
from pipeline.cli_options import comma_strings, option, section, show_commas
from pipeline.errors import UserInputError
from pipeline.fetch.address_policy import AddressPolicy
from pipeline.fetch.blocklist import BlockList
from pipeline.fetch.host_options import OptOutOptions, PolitenessOptions
from pipeline.fetch.proxy import (
    FROM_ENVIRONMENT,
    NO_PROXY_VALUES,
    ProxySettings,
    parse_proxy,
    without_credentials,
)
from pipeline.fetch.robots import DEFAULT_DISALLOWED_DIRECTIVES
from pipeline.fetch.tls import client_context

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FetchOptions:
    """Limits, retries and politeness of one executor's HTTP client."""

    concurrency: int = option(64, help="requests in flight per task", aliases=("--thread_count",))
    per_host_concurrency: int = option(8, help="connections per host and task")
    connect_timeout: float = option(
        5.0, help="seconds for the TCP connect; again for a proxy's CONNECT answer and the TLS handshake"
    )
    # deadline per attempt: connect, redirects, headers and body
    total_timeout: float = option(20.0, flag="--timeout", help="deadline per attempt, seconds")
    max_bytes: int = option(16 * 1024 * 1024, help="largest body accepted (after Content-Encoding)")
    max_redirects: int = option(5, help="redirects followed per request")
    retries: int = option(
        2, help="extra attempts for timeouts (TLS handshake stalls too), resets, 429 and 5xx only"
    )
    backoff_base: float = 0.5  # seconds, doubled per attempt
    max_retry_wait: float = option(30.0, help="a longer Retry-After gives up on the URL instead of waiting")
    dns_ttl: float = option(300.0, help="seconds a DNS answer is cached per executor (0: no cache)")
    user_agent_token: str = option(
        "", help="contact info added to the User-Agent", aliases=("--user_agent_token",)
    )
    disallowed_header_directives: tuple[str, ...] = option(
        DEFAULT_DISALLOWED_DIRECTIVES,
        parse=comma_strings,
        show=show_commas,
        help="X-Robots-Tag directives that exclude an image; '' to ignore the header",
        aliases=("--disallowed_header_directives",),
    )
    allow_networks: tuple[str, ...] = option(
        (),
        flag="--allow-network",
        repeat=True,
        metavar="CIDR",
        help="permit a non-public network, e.g. 127.0.0.1/32 for a local server",
    )
    ca_bundle: str = option(
        "",
        metavar="PATH",
        show=lambda path: path or "the system store",
        help="PEM file of the CA certificates that https servers are verified against, instead of the "
        "system store (which honours SSL_CERT_FILE); must be readable on every executor",
    )
    ignore_ssl_certificate: bool = option(
        False, help="do not verify https certificates (insecure: any server can pose as any host)"
    )
    proxy: str = option(
        FROM_ENVIRONMENT,
        metavar="URL",
        help="http:// proxy for http and https URLs (user:password@ for credentials); 'env': "
        "HTTP_PROXY/HTTPS_PROXY/ALL_PROXY of each executor's environment; 'none': no proxy. "
        "NO_PROXY applies either way",
    )
    # robots.txt, TDMRep, block lists; the job-wide per-host budget (pipeline/fetch/host_options.py)
    opt_outs: OptOutOptions = section(OptOutOptions, "opt-outs")
    politeness: PolitenessOptions = section(PolitenessOptions, "politeness")

    def __post_init__(self) -> None:
        for name in ("concurrency", "per_host_concurrency", "max_bytes"):
            if getattr(self, name) < 1:
                raise UserInputError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        for name in ("connect_timeout", "total_timeout"):
            if getattr(self, name) <= 0:
                raise UserInputError(f"--{name.replace('_', '-')} must be > 0, got {getattr(self, name)}")
        AddressPolicy.from_strings(self.allow_networks)  # raises on a malformed network
        if self.ca_bundle and self.ignore_ssl_certificate:
            raise UserInputError("--ca-bundle and --ignore-ssl-certificate contradict each other: pick one")
        if self.proxy.strip().lower() not in (FROM_ENVIRONMENT, *NO_PROXY_VALUES):
            parse_proxy(self.proxy, "--proxy")  # raises on a malformed URL
        if not all(" " <= c <= "~" for c in self.user_agent_token):
            raise UserInputError(
                f"--user-agent-token must be printable ASCII (it is sent as a header): "
                f"{self.user_agent_token!r}"
            )
        for name in ("max_redirects", "retries", "backoff_base", "max_retry_wait", "dns_ttl"):
            if getattr(self, name) < 0:
                raise UserInputError(f"--{name.replace('_', '-')} must be >= 0, got {getattr(self, name)}")

    def __repr__(self) -> str:
        # Like the generated one, but a proxy's credentials never reach a log line.
        shown = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        shown["proxy"] = without_credentials(self.proxy)
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in shown.items())})"

    def check_environment(self) -> None:
        """Check what only this machine can refuse (run on the driver before any work): the
        ``--ca-bundle`` file, the ``--block-list`` files and the proxy variables; log the proxies
        and the TLS setting in effect.

        Executors read their own environment and files; on a cluster they should match the driver's.
        """
        client_context(self.ca_bundle, self.ignore_ssl_certificate)  # raises on an unreadable bundle
        BlockList.load(self.opt_outs.block_lists)  # raises naming a file and line it cannot use
        proxies = ProxySettings.resolve(self.proxy, os.environ)
        if proxies is not None:
            log.info("proxies: %s", proxies.describe())

    @property
    def user_agent(self) -> str:
        """User-Agent header: product, version, purpose and the operator's contact token."""
        contact = f"; {self.user_agent_token}" if self.user_agent_token else ""
        return (
            f"corpusforge/{__version__} (image-text dataset builder; honours robots.txt, X-Robots-Tag noai "
            f"and TDMRep{contact})"
        )
