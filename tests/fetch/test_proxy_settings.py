"""Which proxy a URL goes through: ``--proxy``, the environment variables and NO_PROXY (no network)."""

from __future__ import annotations

import base64

import pytest

from pipeline.errors import UserInputError
from pipeline.fetch import FetchOptions
from pipeline.fetch.proxy import Proxy, ProxySettings, parse_proxy

PROXY = "http://proxy.internal:3128"


def route(settings: ProxySettings | None, url_scheme: str, host: str, port: int = 443) -> str | None:
    if settings is None:
        return None
    proxy = settings.proxy_for(url_scheme, host, port)
    return proxy.display if proxy else None


def test_no_proxy_anywhere_means_none() -> None:
    assert ProxySettings.resolve("env", {}) is None
    assert ProxySettings.resolve("none", {"HTTP_PROXY": PROXY}) is None
    assert ProxySettings.resolve("", {"HTTPS_PROXY": PROXY}) is None


def test_environment_lower_case_first_then_upper_then_all_proxy() -> None:
    env = {"http_proxy": "http://lower:1", "HTTP_PROXY": "http://upper:2", "ALL_PROXY": "http://all:3"}
    settings = ProxySettings.resolve("env", env)
    assert route(settings, "http", "example.org") == "http://lower:1"
    assert route(settings, "https", "example.org") == "http://all:3"
    settings = ProxySettings.resolve("env", {"HTTPS_PROXY": "proxy.internal:8080"})  # scheme optional
    assert route(settings, "https", "example.org") == "http://proxy.internal:8080"
    assert route(settings, "http", "example.org") is None
    assert "HTTPS_PROXY" in settings.describe()


def test_upper_case_http_proxy_is_ignored_in_a_cgi_context() -> None:
    assert ProxySettings.resolve("env", {"HTTP_PROXY": PROXY, "REQUEST_METHOD": "GET"}) is None


def test_the_option_overrides_the_environment_for_both_schemes() -> None:
    settings = ProxySettings.resolve("http://opt:9", {"HTTP_PROXY": PROXY, "HTTPS_PROXY": PROXY})
    assert route(settings, "http", "a.org") == route(settings, "https", "a.org") == "http://opt:9"


@pytest.mark.parametrize(
    ("no_proxy", "host", "port", "direct"),
    [
        ("example.org", "example.org", 443, True),
        ("example.org", "img.example.org", 443, True),
        (".example.org", "img.example.org", 443, True),
        ("*.example.org", "img.example.org", 443, True),
        ("example.org", "badexample.org", 443, False),
        ("example.org:8443", "example.org", 443, False),
        ("example.org:8443", "example.org", 8443, True),
        ("*", "anything.net", 443, True),
        ("10.0.0.0/8", "10.1.2.3", 443, True),
        ("10.0.0.0/8", "11.1.2.3", 443, False),
        ("192.0.2.7", "192.0.2.7", 443, True),
        ("::1", "::1", 443, True),
        ("[2001:db8::]:443", "2001:db8::", 443, True),
        (" Example.ORG , other.net", "example.org", 443, True),
        ("", "example.org", 443, False),
    ],
)
def test_no_proxy_forms(no_proxy: str, host: str, port: int, direct: bool) -> None:
    settings = ProxySettings.resolve("env", {"HTTPS_PROXY": PROXY, "no_proxy": no_proxy})
    assert (route(settings, "https", host, port) is None) is direct


def test_credentials_become_basic_proxy_authorization_and_never_show() -> None:
    proxy = parse_proxy("http://us%40er:p%3Ass@proxy.internal:3128", "--proxy")
    assert proxy == Proxy("proxy.internal", 3128, "Basic " + base64.b64encode(b"us@er:p:ss").decode())
    assert proxy.display == "http://proxy.internal:3128"
    assert parse_proxy("http://[::1]:3128", "--proxy").display == "http://[::1]:3128"
    assert parse_proxy("proxy.internal", "--proxy").port == 80


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("socks5://user:secret@proxy:1080", "only http:// proxies"),
        ("https://proxy:443", "only http:// proxies"),
        ("http://user:secret@proxy:99999", "not a proxy URL"),
        ("http://user:secret@proxy:3128/path", "has no path"),
        ("http://user:secret@:3128", "has no host"),
    ],
)
def test_malformed_proxies_are_refused_without_showing_credentials(text: str, message: str) -> None:
    with pytest.raises(UserInputError, match=message) as info:
        FetchOptions(proxy=text)
    assert "secret" not in str(info.value)
    with pytest.raises(UserInputError, match="HTTPS_PROXY") as info:
        ProxySettings.resolve("env", {"HTTPS_PROXY": text})
    assert "secret" not in str(info.value)


def test_options_repr_hides_proxy_credentials() -> None:
    assert "secret" not in repr(FetchOptions(proxy="http://user:secret@proxy:3128"))
