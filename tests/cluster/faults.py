"""Pinning a fault to a moment of a job running on the standalone cluster, and checking it hit.

"Mid-job" is a moment the test can see: a file the job commits part-way (a shard's marker) or a
task the driver's UI shows running. A worker kill is then pinned to a task in flight: the
worker's Python processes are frozen (SIGSTOP), so the Python task its executor runs, or is
given next, cannot finish; once the driver's UI shows such a task still running a second later,
the whole worker is SIGKILLed (JVMs and Python, like a machine dying). The driver's event log
must then show that very task lost with its executor and its partition done by a later attempt.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.cluster.driver_ui import DriverUI, RunningTask
from tests.cluster.sockets import outside_loopback
from tests.cluster.standalone import StandaloneCluster

# A task the driver still counts as running this long after the freeze was not just finishing.
SETTLE_SECONDS = 1.0


def reach(moment: Callable[[], bool], driver: subprocess.Popen, log: Path, limit: float = 300.0) -> None:
    """Wait until ``moment()`` holds while the driver still runs; fail with the log otherwise."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and driver.poll() is None:
        if moment():
            return
        time.sleep(0.05)
    raise AssertionError(
        f"the job {'ended' if driver.poll() is not None else 'ran past the limit'} before the moment "
        f"to strike:\n{log.read_text(errors='replace')[-4000:]}"
    )


def assert_loopback_only(cluster: StandaloneCluster) -> None:
    """Every socket of every cluster process (JVMs included) is on loopback."""
    pids = cluster.pids()
    assert pids, "no cluster process found"
    outside = outside_loopback(pids)
    assert not outside, "sockets outside loopback:\n" + "\n".join(outside)


@dataclass(frozen=True)
class Target:
    """A worker as one application sees it: its index and the executors it runs for the app."""

    index: int
    app_id: str
    executors: tuple[str, ...]


def target_worker(
    cluster: StandaloneCluster, ui: DriverUI, driver: subprocess.Popen, log: Path, index: int = 1
) -> Target:
    """Wait until the driver's UI answers and worker ``index`` runs an executor of its application.

    Known before the moment to strike, so that the freeze then follows it within one poll.
    """
    app: str | None = None
    executors: list[str] = []

    def ready() -> bool:
        nonlocal app, executors
        app = app or ui.app_id()
        executors = cluster.executor_ids(index, app) if app else []
        return bool(executors)

    reach(ready, driver, log)
    assert app is not None
    return Target(index, app, tuple(executors))


def task_running_on(ui: DriverUI, target: Target) -> Callable[[], bool]:
    """Moment: the driver shows a task running on the target worker's executor."""
    return lambda: any(t.executor_id in target.executors for t in ui.running_tasks(target.app_id))


def kill_worker_mid_task(
    cluster: StandaloneCluster,
    ui: DriverUI,
    driver: subprocess.Popen,
    target: Target,
    before_kill: Callable[[], bool] | None = None,
    limit: float = 300.0,
) -> RunningTask:
    """Freeze the target's Python processes now, wait for a task stuck there, SIGKILL the worker.

    A task seen running on the frozen executor, and still running ``SETTLE_SECONDS`` later, was
    not merely finishing: it is in flight and can only end by being lost. Were the executor idle
    at the freeze, the driver hands it the next pending task, which then hangs the same way.
    ``before_kill`` (optional) delays the kill until it holds, e.g. until others commit a shard.
    Returns the stuck task.
    """
    deadline = time.monotonic() + limit
    try:
        stuck: list[RunningTask] = []
        while not stuck and time.monotonic() < deadline and driver.poll() is None:
            cluster.freeze_python(target.index)  # again: the executor may have started a new one
            seen = [t for t in ui.running_tasks(target.app_id) if t.executor_id in target.executors]
            if seen:
                time.sleep(SETTLE_SECONDS)
                still = {t.task_id for t in ui.running_tasks(target.app_id)}
                stuck = [t for t in seen if t.task_id in still]
            time.sleep(0.05)
        assert stuck, f"no task hung on the frozen worker{target.index} before the job ended"
        while before_kill is not None and not before_kill():
            assert driver.poll() is None and time.monotonic() < deadline, "the job ended with a task stuck"
            time.sleep(0.05)
        return stuck[0]
    finally:
        cluster.kill_worker(target.index)


def event_log_conf(folder: Path) -> dict[str, str]:
    """Spark settings that make the driver write one plain JSON-lines event log into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    return {
        "spark.eventLog.enabled": "true",
        "spark.eventLog.dir": folder.as_uri(),
        "spark.eventLog.compress": "false",
        "spark.eventLog.rolling.enabled": "false",
    }


def task_ends(folder: Path) -> list[dict]:
    """The ``SparkListenerTaskEnd`` events of the one application that logged into ``folder``."""
    [log] = [p for p in folder.iterdir() if p.is_file() and p.name.startswith("app-")]
    events = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    return [e for e in events if e["Event"] == "SparkListenerTaskEnd"]


def assert_task_lost_then_retried(folder: Path, task: RunningTask) -> None:
    """The event log shows ``task`` lost with its executor, and its partition done by a later attempt.

    (The driver's own log says so only at INFO: Spark does not count a lost executor against
    the task, so it does not warn.)
    """
    ends = task_ends(folder)
    [lost] = [e for e in ends if e["Task Info"]["Task ID"] == task.task_id]
    assert lost["Task End Reason"]["Reason"] == "ExecutorLostFailure", lost["Task End Reason"]
    assert lost["Task Info"]["Executor ID"] == task.executor_id
    redone = [
        e
        for e in ends
        if e["Stage ID"] == task.stage_id
        and e["Task Info"]["Index"] == task.index
        and e["Task Info"]["Task ID"] > task.task_id
        and e["Task End Reason"]["Reason"] == "Success"
    ]
    assert redone, f"no later attempt of task {task} succeeded"
