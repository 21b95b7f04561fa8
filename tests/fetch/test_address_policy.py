"""The SSRF guard as a pure policy: no packets are sent by these tests."""

import ipaddress

import pytest

from pipeline.errors import ErrorClass, SampleError, UserInputError
from pipeline.fetch.address_policy import AddressPolicy

REFUSED = [
    "127.0.0.1",
    "127.0.0.2",
    "0.0.0.0",
    "10.1.2.3",
    "172.16.0.1",
    "172.31.255.255",
    "192.168.1.1",
    "169.254.169.254",
    "100.64.0.1",
    "224.0.0.1",
    "::1",
    "::",
    "fe80::1",
    "fc00::1",
    "::ffff:127.0.0.1",
    "::ffff:10.0.0.1",
]


@pytest.mark.parametrize("address", REFUSED)
def test_non_public_addresses_are_refused(address: str) -> None:
    policy = AddressPolicy()
    assert not policy.is_allowed(ipaddress.ip_address(address))
    with pytest.raises(SampleError) as info:
        policy.check_address(address, "some.host")
    assert info.value.error_class is ErrorClass.ADDRESS_REFUSED
    assert address in info.value.message or "non-public" in info.value.message


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700::1111"])
def test_public_addresses_are_allowed(address: str) -> None:
    assert AddressPolicy().is_allowed(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "host",
    ["2130706433", "0177.0.0.1", "0x7f.0.0.1", "0x7f000001", "127.1", "017700000001", "0", "012.1.2.3"],
)
def test_numeric_host_forms_are_refused(host: str) -> None:
    with pytest.raises(SampleError) as info:
        AddressPolicy().check_host_literal(host)
    assert info.value.error_class is ErrorClass.ADDRESS_REFUSED


def test_non_canonical_public_numeric_host_is_invalid() -> None:
    with pytest.raises(SampleError) as info:
        AddressPolicy().check_host_literal("134744072")  # 8.8.8.8 as a decimal integer
    assert info.value.error_class is ErrorClass.INVALID_URL


def test_names_are_left_to_the_resolver() -> None:
    assert AddressPolicy().check_host_literal("img.example") is False
    with pytest.raises(SampleError):
        AddressPolicy().check_host_literal("[::1]")


def test_allow_network_is_exact() -> None:
    policy = AddressPolicy.from_strings(["127.0.0.1/32"])
    assert policy.is_allowed(ipaddress.ip_address("127.0.0.1"))
    assert not policy.is_allowed(ipaddress.ip_address("127.0.0.2"))
    assert not policy.is_allowed(ipaddress.ip_address("10.0.0.1"))


def test_metadata_address_needs_an_exact_allow() -> None:
    assert not AddressPolicy.from_strings(["169.254.0.0/16"]).is_allowed(
        ipaddress.ip_address("169.254.169.254")
    )
    assert AddressPolicy.from_strings(["169.254.169.254/32"]).is_allowed(
        ipaddress.ip_address("169.254.169.254")
    )


def test_malformed_allow_network_is_a_user_error() -> None:
    with pytest.raises(UserInputError, match="not an IP network"):
        AddressPolicy.from_strings(["localhost"])
