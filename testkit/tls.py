"""TLS on loopback for tests: a local certificate authority (``trustme``), TLS variants of the
loopback servers, servers with bad certificates, and a server whose handshake never answers.

``LocalCA`` issues server certificates (good, expired, for the wrong host) and writes its own
certificate as the PEM bundle a client is given (``--ca-bundle``). ``TlsHostileServer`` is the
hostile server over TLS: the same routes, with the certificate its context holds; it counts the
TCP connections it accepted and records the SNI name of every handshake, so tests can prove
keep-alive reuse and SNI from the server's side. ``StallServer`` accepts TCP connections and never
says a word, the way a server stalls a TLS handshake.
"""

from __future__ import annotations

import datetime
import logging
import socket
import ssl
import threading
from pathlib import Path
from typing import Any, Self

import trustme

from testkit.hostile import HostileServer

log = logging.getLogger(__name__)

LOOPBACK_NAMES = ("localhost", "127.0.0.1")
HANDSHAKE_SECONDS = 10.0  # the server's patience with a client's handshake


class LocalCA:
    """A certificate authority that only the tests trust."""

    def __init__(self) -> None:
        self._ca = trustme.CA()

    def write_bundle(self, path: str | Path) -> Path:
        """Write the CA certificate (what a client trusts) to ``path`` as PEM."""
        path = Path(path)
        self._ca.cert_pem.write_to_path(str(path))
        return path

    def issue(self, *names: str, expired: bool = False) -> trustme.LeafCert:
        """A server certificate for ``names`` (DNS names or IP addresses), valid now unless ``expired``."""
        if not expired:
            return self._ca.issue_cert(*(names or LOOPBACK_NAMES))
        now = datetime.datetime.now(datetime.UTC)
        return self._ca.issue_cert(
            *(names or LOOPBACK_NAMES),
            not_before=now - datetime.timedelta(days=30),
            not_after=now - datetime.timedelta(days=1),
        )

    def server_context(self, *names: str, expired: bool = False) -> ssl.SSLContext:
        """A server context presenting a certificate of this CA for ``names`` (default: loopback)."""
        return server_context(self.issue(*names, expired=expired))

    def write_server_files(self, directory: str | Path, *names: str) -> tuple[Path, Path]:
        """Write a server certificate chain and its key for ``names`` as PEM; return both paths
        (for servers in other processes)."""
        directory = Path(directory)
        cert = self.issue(*names)
        chain, key = directory / "server-chain.pem", directory / "server-key.pem"
        chain.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
        cert.private_key_pem.write_to_path(str(key))
        return chain, key


def server_context(cert: trustme.LeafCert) -> ssl.SSLContext:
    """A TLS server context presenting ``cert``."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    return context


def self_signed_context() -> ssl.SSLContext:
    """A server context presenting a self-signed certificate (a CA's own, which no one trusts)."""
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    with ca.cert_pem.tempfile() as cert, ca.private_key_pem.tempfile() as key:
        context.load_cert_chain(cert, key)
    return context


def untrusted_context() -> ssl.SSLContext:
    """A server context whose certificate (for the loopback names) comes from an unknown CA."""
    return LocalCA().server_context()


class TlsMixin:
    """TLS for a :class:`LoopbackServer`: each accepted connection's handshake runs in its own
    handler thread (a stalled client holds up nobody), with ``tls_context``'s certificate."""

    tls_context: ssl.SSLContext
    connections: int
    sni_names: list[str | None]
    _lock: threading.Lock

    def use_tls(self, context: ssl.SSLContext) -> None:
        self.tls_context = context
        self.connections = 0
        self.sni_names = []
        context.sni_callback = self._sni

    def _sni(self, sslobj: ssl.SSLObject, name: str | None, context: ssl.SSLContext) -> None:
        with self._lock:
            self.sni_names.append(name)

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.server_address[1]}"  # type: ignore[attr-defined]

    def finish_request(self, request: Any, client_address: Any) -> None:
        with self._lock:
            self.connections += 1
        request.settimeout(HANDSHAKE_SECONDS)
        try:
            tls = self.tls_context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as exc:  # the client refused the certificate, or gave up
            log.debug("TLS handshake from %s failed: %s", client_address, exc)
            return
        tls.settimeout(None)
        try:
            super().finish_request(tls, client_address)  # type: ignore[misc]
        finally:
            tls.close()


class TlsHostileServer(TlsMixin, HostileServer):
    """The hostile server over TLS, presenting the certificate of ``context``."""

    thread_name = "tls-hostile-server"

    def __init__(self, context: ssl.SSLContext, port: int = 0, **hostile: Any) -> None:
        super().__init__(port, **hostile)
        self.use_tls(context)


class StallServer:
    """Accepts TCP connections on 127.0.0.1 and never sends or reads a byte until stopped."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._held: list[socket.socket] = []
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="stall-server", daemon=True)

    @property
    def port(self) -> int:
        return int(self._listener.getsockname()[1])

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def accepted(self) -> int:
        return len(self._held)

    def _accept(self) -> None:
        self._listener.settimeout(0.1)
        while not self._stopping.is_set():
            try:
                connection, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._held.append(connection)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()
        self._thread.join()
        for connection in self._held:
            connection.close()
        self._listener.close()
