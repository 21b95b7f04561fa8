"""The TLS client context of the fetcher: certificates verified by default, one context per process.

Verification uses the system store as Python finds it (``ssl.create_default_context()``, which
honours ``SSL_CERT_FILE`` and ``SSL_CERT_DIR``), or only the CA certificates of ``--ca-bundle``
when given. ``--ignore-ssl-certificate`` turns verification off and is logged as a warning.
Loading a store costs milliseconds, so a context is built once per process and setting, on the
first https URL, and shared by every task of the worker.
"""

from __future__ import annotations

import functools
import logging
import os
import ssl

from pipeline.errors import ErrorClass, SampleError, UserInputError

log = logging.getLogger(__name__)


def client_context(ca_bundle: str, ignore_certificate: bool) -> ssl.SSLContext:
    """The client context for these options (cached per process, environment included).

    Raises ``UserInputError`` naming the file when ``ca_bundle`` cannot be read or holds no
    certificate.
    """
    return _context(
        ca_bundle, ignore_certificate, os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR")
    )


@functools.lru_cache(maxsize=8)
def _context(
    ca_bundle: str, ignore_certificate: bool, cert_file: str | None, cert_dir: str | None
) -> ssl.SSLContext:
    # cert_file and cert_dir are only part of the cache key: OpenSSL reads them from the environment.
    if ignore_certificate:
        log.warning(
            "--ignore-ssl-certificate: https certificates are NOT verified; any server can pose as any host"
        )
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    if not ca_bundle:
        return ssl.create_default_context()
    try:
        context = ssl.create_default_context(cafile=ca_bundle)
    except FileNotFoundError as exc:
        raise UserInputError(f"--ca-bundle {ca_bundle}: no such file") from exc
    except (OSError, ssl.SSLError) as exc:
        raise UserInputError(
            f"--ca-bundle {ca_bundle}: not a readable PEM file of CA certificates: {exc}"
        ) from exc
    if not context.get_ca_certs():
        raise UserInputError(f"--ca-bundle {ca_bundle}: holds no CA certificate")
    return context


_HINTS = {
    # X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY, ..._ISSUER_CERT: a CA that is not trusted here
    20: " (its CA is not among the trusted ones: see --ca-bundle)",
    2: " (its CA is not among the trusted ones: see --ca-bundle)",
}


def handshake_error(host: str, exc: ssl.SSLError) -> SampleError:
    """The :class:`SampleError` (``TLS_ERROR``) for a handshake with ``host`` that failed with ``exc``."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        reason = exc.verify_message or exc.reason or str(exc)
        hint = _HINTS.get(exc.verify_code, "")
        return SampleError(ErrorClass.TLS_ERROR, f"TLS with {host}: certificate refused: {reason}{hint}")
    reason = exc.reason.lower().replace("_", " ") if exc.reason else str(exc)
    if exc.reason == "WRONG_VERSION_NUMBER":
        reason += " (the server does not speak TLS on this port)"
    return SampleError(ErrorClass.TLS_ERROR, f"TLS handshake with {host} failed: {reason}")
