"""A real HTTP proxy on loopback for tests: Debian's ``tinyproxy``, configured and run in a folder.

``Tinyproxy(folder, ...)`` writes a configuration (listen on 127.0.0.1 at a free port, clients
from 127.0.0.1 only, no upstream, a small client limit, log and pid file in ``folder``), runs
``tinyproxy -d -c CONF`` in the foreground as a child process and stops it on exit. Its log is
what proves a request went through it (:meth:`requests`); it also adds ``Via: 1.1 VIA_NAME`` to
the requests it forwards, which the origin server sees.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Self

from testkit.net import free_port

VIA_NAME = "corpusforge-test-proxy"
INSTALL_HINT = (
    "tinyproxy is needed for the proxy tests: `make test` installs it (check-debian-tools), "
    "or run `sudo apt-get install -y tinyproxy`"
)


def tinyproxy_binary() -> str | None:
    """The tinyproxy executable, or None when it is not installed."""
    return (
        os.environ.get("CORPUSFORGE_TINYPROXY")
        or shutil.which("tinyproxy")
        or ("/usr/bin/tinyproxy" if Path("/usr/bin/tinyproxy").exists() else None)
    )


class Tinyproxy:
    """tinyproxy on 127.0.0.1; ``credentials`` requires Basic auth, ``connect_ports`` limits CONNECT."""

    def __init__(
        self,
        folder: str | Path,
        credentials: tuple[str, str] | None = None,
        connect_ports: Sequence[int] = (),
        max_clients: int = 16,
    ) -> None:
        binary = tinyproxy_binary()
        if binary is None:
            raise RuntimeError(INSTALL_HINT)
        self.binary = binary
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.credentials = credentials
        self.connect_ports = tuple(connect_ports)
        self.max_clients = max_clients
        self.port = free_port()
        self.log_file = self.folder / "tinyproxy.log"
        self.config_file = self.folder / "tinyproxy.conf"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The proxy URL without credentials."""
        return f"http://127.0.0.1:{self.port}"

    def url_with(self, user: str, password: str) -> str:
        """The proxy URL with ``user:password@``."""
        return f"http://{user}:{password}@127.0.0.1:{self.port}"

    def _config(self) -> str:
        lines = [
            "Listen 127.0.0.1",
            f"Port {self.port}",
            "Allow 127.0.0.1",
            f"MaxClients {self.max_clients}",
            "Timeout 30",
            f'LogFile "{self.log_file}"',
            f'PidFile "{self.folder / "tinyproxy.pid"}"',
            "LogLevel Info",
            f'ViaProxyName "{VIA_NAME}"',
        ]
        lines += [f"ConnectPort {port}" for port in self.connect_ports]
        if self.credentials:
            lines.append(f"BasicAuth {self.credentials[0]} {self.credentials[1]}")
        return "\n".join(lines) + "\n"

    def start(self) -> Self:
        self.config_file.write_text(self._config())
        output = open(self.folder / "stdout.log", "wb")  # noqa: SIM115 - the child keeps it open
        self._process = subprocess.Popen(
            [self.binary, "-d", "-c", str(self.config_file)],
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        output.close()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"tinyproxy exited with code {self._process.returncode}:\n{self.output()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"tinyproxy did not listen on 127.0.0.1:{self.port} within 15 s:\n{self.output()}")

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def output(self) -> str:
        """The proxy's log and console output so far."""
        parts = [
            p.read_text(errors="replace") for p in (self.log_file, self.folder / "stdout.log") if p.exists()
        ]
        return "\n".join(parts)

    def requests(self) -> list[str]:
        """Every request line the proxy received, in order (``GET http://...``, ``CONNECT host:port``)."""
        marker = "Request (file descriptor"
        text = self.log_file.read_text(errors="replace") if self.log_file.exists() else ""
        return [
            line.split("): ", 1)[1].strip() for line in text.splitlines() if marker in line and "): " in line
        ]

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
