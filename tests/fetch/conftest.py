"""Fixtures shared by the fetcher's TLS and proxy tests: one local CA and its bundle per module."""

from __future__ import annotations

import pytest

from testkit.tls import LocalCA


@pytest.fixture(scope="module")
def ca() -> LocalCA:
    """A local certificate authority (trustme) that signs the test servers' certificates."""
    return LocalCA()


@pytest.fixture(scope="module")
def bundle(ca: LocalCA, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The CA's certificate as a PEM file, what ``--ca-bundle`` takes."""
    return str(ca.write_bundle(tmp_path_factory.mktemp("ca") / "ca.pem"))
