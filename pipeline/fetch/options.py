"""Options of the HTTP fetcher."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline import __version__
from pipeline.errors import UserInputError
from pipeline.fetch.address_policy import AddressPolicy
from pipeline.fetch.robots import DEFAULT_DISALLOWED_DIRECTIVES


@dataclass(frozen=True)
class FetchOptions:
    """Limits, retries and politeness of one executor's HTTP client."""

    concurrency: int = 64  # requests in flight per task
    per_host_concurrency: int = 8
    connect_timeout: float = 5.0
    total_timeout: float = 20.0  # deadline per attempt: connect, redirects, headers and body
    max_bytes: int = 16 * 1024 * 1024
    max_redirects: int = 5
    retries: int = 2  # extra attempts, only for timeouts, resets, 429 and 5xx
    backoff_base: float = 0.5  # seconds, doubled per attempt
    max_retry_wait: float = 30.0  # a longer Retry-After gives up instead of waiting
    dns_ttl: float = 300.0
    user_agent_token: str = ""
    disallowed_header_directives: tuple[str, ...] = DEFAULT_DISALLOWED_DIRECTIVES
    allow_networks: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("concurrency", "per_host_concurrency", "max_bytes"):
            if getattr(self, name) < 1:
                raise UserInputError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        for name in ("connect_timeout", "total_timeout"):
            if getattr(self, name) <= 0:
                raise UserInputError(f"--{name.replace('_', '-')} must be > 0, got {getattr(self, name)}")
        AddressPolicy.from_strings(self.allow_networks)  # raises on a malformed network
        if not all(" " <= c <= "~" for c in self.user_agent_token):
            raise UserInputError(
                f"--user-agent-token must be printable ASCII (it is sent as a header): "
                f"{self.user_agent_token!r}"
            )
        for name in ("max_redirects", "retries", "backoff_base", "max_retry_wait", "dns_ttl"):
            if getattr(self, name) < 0:
                raise UserInputError(f"--{name.replace('_', '-')} must be >= 0, got {getattr(self, name)}")

    @property
    def user_agent(self) -> str:
        """User-Agent header: product, version, purpose and the operator's contact token."""
        contact = f"; {self.user_agent_token}" if self.user_agent_token else ""
        return f"corpusforge/{__version__} (image-text dataset builder; honours X-Robots-Tag noai{contact})"
