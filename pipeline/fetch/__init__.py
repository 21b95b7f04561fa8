"""HTTP fetching with safety defaults: address policy, DNS cache, opt-out headers, caps."""

from pipeline.fetch.address_policy import AddressPolicy
from pipeline.fetch.client import Fetcher, FetchResult
from pipeline.fetch.options import FetchOptions

__all__ = ["AddressPolicy", "FetchOptions", "FetchResult", "Fetcher"]
