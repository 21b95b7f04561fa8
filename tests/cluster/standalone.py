"""A real Spark standalone cluster on loopback for tests: one master, N one-core workers.

Every daemon is started with ``spark-class`` from the pyspark in this environment, bound to
127.0.0.1, with small memory. Each node (master, worker) carries its own marker in its
environment, inherited by everything it starts (executor JVMs, Python daemons and workers), so a
test can kill a whole node the way a machine dies, and teardown can end exactly the processes the
cluster started, found by id.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pyspark

from pipeline.submit import job_script, spark_submit_command
from testkit.net import free_port

log = logging.getLogger(__name__)

SPARK_CLASS = Path(pyspark.__file__).parent / "bin" / "spark-class"
MARKER = "CORPUSFORGE_TEST_NODE"
# Small enough for a shared 2-core machine; the executor JVM only moves task results.
EXECUTOR_MEMORY = "512m"
WORKER_MEMORY = "768m"
DAEMON_MEMORY = "256m"
# The client compiler only, and a serial collector: short test jobs on 2 cores spend less CPU on
# the JIT and GC threads than with the server defaults (a job's time roughly halves).
JVM_OPTIONS = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"


def node_pids(marker: str) -> list[int]:
    """Pids of live processes whose environment carries ``MARKER=marker`` (Linux /proc)."""
    needle = f"{MARKER}={marker}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
    return found


def kill_node(marker: str) -> list[int]:
    """SIGKILL every process of one node, until none is left; returns the pids killed."""
    killed: list[int] = []
    for _ in range(50):
        pids = [p for p in node_pids(marker) if p != os.getpid()]
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        killed += pids
        time.sleep(0.1)
    return sorted(set(killed))


def is_python(pid: int) -> bool:
    """Whether process ``pid`` runs a Python interpreter (a PySpark daemon or worker)."""
    with contextlib.suppress(OSError):
        program = (Path("/proc") / str(pid) / "cmdline").read_bytes().split(b"\0")[0]
        return Path(program.decode(errors="replace")).name.startswith("python")
    return False


def freeze_python(marker: str) -> list[int]:
    """SIGSTOP the Python processes of one node until all are stopped; returns their pids."""
    frozen: set[int] = set()
    for _ in range(50):
        pids = {p for p in node_pids(marker) if p != os.getpid() and is_python(p)}
        if pids <= frozen:
            break
        for pid in pids - frozen:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)
        frozen |= pids
        time.sleep(0.05)  # a process forked meanwhile is caught by the next pass
    return sorted(frozen)


@dataclass
class Node:
    """One daemon (master or worker) and its log."""

    name: str
    marker: str
    process: subprocess.Popen
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@dataclass
class StandaloneCluster:
    """Start with :meth:`start`, stop with :meth:`stop`; submit jobs with :meth:`submit`."""

    workdir: Path
    workers: int = 2
    cluster_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    port: int = 0
    master: Node | None = None
    nodes: list[Node] = field(default_factory=list)

    @property
    def master_url(self) -> str:
        return f"spark://127.0.0.1:{self.port}"

    def _env(self, marker: str) -> dict[str, str]:
        return {
            **os.environ,
            MARKER: marker,
            "SPARK_LOCAL_IP": "127.0.0.1",
            "SPARK_DAEMON_MEMORY": DAEMON_MEMORY,
            "SPARK_DAEMON_JAVA_OPTS": JVM_OPTIONS,
            "SPARK_LOG_DIR": str(self.workdir / "logs"),
            "PYSPARK_PYTHON": sys.executable,
        }

    def _spawn(self, name: str, args: list[str]) -> Node:
        marker = f"{self.cluster_id}-{name}"
        log_path = self.workdir / f"{name}.log"
        with open(log_path, "ab") as handle:
            process = subprocess.Popen(
                [str(SPARK_CLASS), *args],
                env=self._env(marker),
                stdout=handle,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        return Node(name, marker, process, log_path)

    def start(self, timeout: float = 120.0) -> StandaloneCluster:
        """Start the master and the workers; return once every worker has registered."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.master = self._spawn(
            "master",
            [
                "org.apache.spark.deploy.master.Master",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--webui-port",
                str(free_port()),
            ],
        )
        self._wait(self.master, "Starting Spark master at", timeout)
        for i in range(self.workers):
            self.start_worker(i, timeout)
        return self

    def start_worker(self, index: int, timeout: float = 120.0) -> Node:
        """Start (or restart) worker ``index`` and wait until the master has registered it."""
        name = f"worker{index}"
        node = self._spawn(
            name,
            [
                "org.apache.spark.deploy.worker.Worker",
                self.master_url,
                "--host",
                "127.0.0.1",
                "--cores",
                "1",
                "--memory",
                WORKER_MEMORY,
                "--webui-port",
                str(free_port()),
                "--work-dir",
                str(self.workdir / name),
            ],
        )
        self._wait(node, "Successfully registered with master", timeout)
        self.nodes = [n for n in self.nodes if n.name != name] + [node]
        return node

    def _wait(self, node: Node, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in node.log_text():
                return
            if node.process.poll() is not None:
                break
            time.sleep(0.2)
        raise RuntimeError(f"{node.name} did not start:\n{node.log_text()[-3000:]}")

    def alive_workers(self) -> list[Node]:
        return [n for n in self.nodes if n.process.poll() is None]

    def ensure_workers(self) -> None:
        """Restart any worker a test killed, so the next test gets the full cluster."""
        alive = {n.name for n in self.alive_workers()}
        for i in range(self.workers):
            if f"worker{i}" not in alive:
                self.start_worker(i)

    def worker(self, index: int) -> Node:
        """The node of worker ``index``."""
        return next(n for n in self.nodes if n.name == f"worker{index}")

    def kill_worker(self, index: int) -> list[int]:
        """SIGKILL worker ``index`` and everything it started (its executor and Python workers)."""
        node = self.worker(index)
        pids = kill_node(node.marker)
        node.process.wait()
        log.info("killed %s: pids %s", node.name, pids)
        return pids

    def freeze_python(self, index: int) -> list[int]:
        """SIGSTOP the Python daemon and workers of worker ``index``; its JVMs keep running.

        The executor still heartbeats and serves its shuffle and cached blocks, and the driver
        still hands it tasks; a Python task it runs (or is given) then hangs until the worker is
        killed, so a test can pin a kill to a task in flight.
        """
        return freeze_python(self.worker(index).marker)

    def executor_ids(self, index: int, app_id: str) -> list[str]:
        """Ids of the executors that worker ``index`` runs for application ``app_id``."""
        ids = []
        for pid in node_pids(self.worker(index).marker):
            with contextlib.suppress(OSError):
                args = (Path("/proc") / str(pid) / "cmdline").read_bytes().decode().split("\0")
                if "--executor-id" in args and app_id in args:
                    ids.append(args[args.index("--executor-id") + 1])
        return sorted(set(ids))

    def pids(self) -> list[int]:
        """Every live process of the cluster: master, workers, executors, Python workers, drivers."""
        nodes = [*self.nodes, *([self.master] if self.master else [])]
        markers = [n.marker for n in nodes] + [f"{self.cluster_id}-driver"]
        return sorted(pid for marker in markers for pid in node_pids(marker))

    def submit_command(self, job: str, args: list[str], conf: dict[str, str] | None = None) -> list[str]:
        """``spark-submit --master spark://...`` for ``jobs/JOB.py`` with small, loopback-only settings.

        ``conf`` adds or overrides Spark settings (it comes after the defaults, and the last wins).
        """
        command = spark_submit_command(job, args, master=self.master_url)
        settings = {
            "spark.executor.memory": EXECUTOR_MEMORY,
            "spark.driver.memory": "512m",
            "spark.executor.cores": "1",
            "spark.cores.max": str(self.workers),
            "spark.driver.host": "127.0.0.1",
            "spark.driver.bindAddress": "127.0.0.1",
            "spark.executorEnv.PYSPARK_PYTHON": sys.executable,
            "spark.driver.extraJavaOptions": JVM_OPTIONS,
            "spark.executor.extraJavaOptions": JVM_OPTIONS,
        }
        at = command.index("--master") + 2
        extra = [item for key, value in settings.items() for item in ("--conf", f"{key}={value}")]
        command = [*command[:at], *extra, *command[at:]]
        overrides = [item for key, value in (conf or {}).items() for item in ("--conf", f"{key}={value}")]
        at = command.index(str(job_script(job)))
        return [*command[:at], *overrides, *command[at:]]

    def submit(
        self, job: str, args: list[str], log_path: Path, conf: dict[str, str] | None = None
    ) -> subprocess.Popen:
        """Start the job's driver in its own session (so a test can kill it whole)."""
        env = {**self._env(f"{self.cluster_id}-driver")}
        with open(log_path, "ab") as handle:
            return subprocess.Popen(
                self.submit_command(job, args, conf),
                env=env,
                stdout=handle,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def kill_driver(self) -> list[int]:
        """SIGKILL every driver process this cluster's submits started."""
        return kill_node(f"{self.cluster_id}-driver")

    def stop(self) -> None:
        """Kill the driver(s), the workers and the master: every process the cluster started."""
        self.kill_driver()
        for node in [*self.nodes, *([self.master] if self.master else [])]:
            kill_node(node.marker)
            with contextlib.suppress(Exception):
                node.process.wait(timeout=10)
