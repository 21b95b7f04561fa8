"""The one Spark executor of the stages: tasks, progress, counters, resources, worker set-up.

:meth:`SparkExecutor.map` runs a :class:`~pipeline.stage.ShardStep` once per task, one Spark
task each. On the driver a tqdm bar counts finished tasks (from Spark's status tracker) and
shows running totals of the step's counters (accumulators), so a long job shows progress without
waiting for ``collect()``. A step's declared :class:`~pipeline.stage.Resources` become a Spark
task resource profile (``spark.task.cpus`` and GPUs per task, for this step only) on clusters
that schedule them; local mode runs one core per task and says so.

Per-worker state: Spark reuses its Python workers between tasks, so a step's ``setup()`` (a
model load) runs once per worker process and is kept for the next task of an equal step
(``setup_key``); a worker holds one step's state at a time, and tears it down when another step
arrives or the process exits.
"""

from __future__ import annotations

import atexit
import logging
import threading
from collections.abc import Callable, Hashable, Sequence
from typing import Any

from tqdm import tqdm

from pipeline.stage import Resources, ShardStep

log = logging.getLogger(__name__)

# The state of the step this worker process ran last: (setup key, step, state).
_WORKER_STATE: list[tuple[Hashable, ShardStep[Any, Any], Any]] = []
_WORKER_LOCK = threading.Lock()


def _teardown_worker_state() -> None:
    while _WORKER_STATE:
        _, step, state = _WORKER_STATE.pop()
        try:
            step.teardown(state)
        except Exception:  # noqa: BLE001 - a worker shutting down must not fail on a release
            log.warning("teardown of %s failed", step.name, exc_info=True)


atexit.register(_teardown_worker_state)


def worker_state(step: ShardStep[Any, Any]) -> Any:
    """The state ``step.setup()`` built in this process (built now if another step's was kept)."""
    key = step.setup_key()
    if key is None:
        return None
    with _WORKER_LOCK:
        if _WORKER_STATE and _WORKER_STATE[0][0] == key:
            return _WORKER_STATE[0][2]
        _teardown_worker_state()
        state = step.setup()
        _WORKER_STATE.append((key, step, state))
        return state


def run_task(step: ShardStep[Any, Any], task: Any) -> dict[str, Any]:
    """One task of ``step`` in this process, with its worker state (what a Spark task runs)."""
    return step.process(task, worker_state(step))


class SparkExecutor:
    """Runs steps on a Spark context; ``spark`` is also the stages' handle to Spark SQL."""

    def __init__(self, spark: Any) -> None:
        self.spark = spark
        self.context = spark.sparkContext

    @property
    def local(self) -> bool:
        return str(self.context.master).startswith("local")

    def map(self, step: ShardStep[Any, Any], tasks: Sequence[Any]) -> list[dict[str, Any]]:
        """Run ``step`` on every task not yet complete, one Spark task each; results in task order.

        A complete task (``step.completed``) answers with its committed result, ``resumed`` set.
        """
        results: list[dict[str, Any] | None] = []
        for task in tasks:
            done = step.completed(task)
            results.append(None if done is None else {**done, "resumed": True})
        todo = [i for i, r in enumerate(results) if r is None]
        if len(todo) < len(tasks):
            log.info("%s: %d of %d tasks already complete", step.name, len(tasks) - len(todo), len(tasks))
        for i, result in zip(todo, self._run(step, [tasks[i] for i in todo]), strict=True):
            results[i] = result
        return results  # type: ignore[return-value]

    def _run(self, step: ShardStep[Any, Any], tasks: Sequence[Any]) -> list[dict[str, Any]]:
        if not tasks:
            return []
        sc = self.context
        accumulators = {name: sc.accumulator(0) for name in step.counters}

        def counted(task: Any) -> dict[str, Any]:
            result = run_task(step, task)
            for name, accumulator in accumulators.items():
                accumulator.add(int(result.get(name, 0)))
            return result

        rdd = self.with_resources(sc.parallelize(list(tasks), len(tasks)), step.resources(), step.name)
        return self.collect(
            rdd.map(counted), len(tasks), step.name, f"{step.description}: {len(tasks)} tasks", accumulators
        )

    def with_resources(self, rdd: Any, resources: Resources, what: str) -> Any:
        """``rdd`` with a task resource profile for ``resources`` (unchanged for the default)."""
        if resources.is_default:
            return rdd
        if self.local:
            log.info(
                "%s asks for %d cores and %g GPUs per task; local mode runs tasks on one core each",
                what,
                resources.cpus,
                resources.gpus,
            )
            return rdd
        from pyspark.resource import ResourceProfileBuilder, TaskResourceRequests

        requests = TaskResourceRequests().cpus(resources.cpus)
        if resources.gpus:
            requests = requests.resource("gpu", resources.gpus)
        log.info("%s: %d cores and %g GPUs per task", what, resources.cpus, resources.gpus)
        return rdd.withResources(ResourceProfileBuilder().require(requests).build)

    def collect(
        self,
        rdd: Any,
        tasks: int,
        group: str,
        description: str,
        accumulators: dict[str, Any] | None = None,
    ) -> list[Any]:
        """``rdd.collect()`` in a thread while a bar counts the finished tasks of its last stage.

        ``tasks`` is the number of partitions of ``rdd`` (one task each in its result stage).
        """
        sc = self.context
        sc.setJobGroup(group, description)
        results: list[Any] = []
        failure: list[BaseException] = []

        def collect() -> None:
            try:
                results.extend(rdd.collect())
            except BaseException as exc:  # re-raised on the driver thread below
                failure.append(exc)

        thread = threading.Thread(target=collect, name=f"{group}-collect", daemon=True)
        thread.start()
        with tqdm(total=tasks, desc=description.split(":")[0], unit=" task") as progress:
            while thread.is_alive():
                thread.join(timeout=1.0)
                done = min(_finished_result_tasks(sc, group), tasks)
                if done > progress.n:
                    progress.update(done - progress.n)
                    if accumulators:
                        progress.set_postfix({k: a.value for k, a in accumulators.items()}, refresh=False)
            progress.update(tasks - progress.n)
        sc.setJobGroup("", "")
        if failure:
            raise failure[0]
        return results

    def flat_map(self, tasks: Sequence[Any], function: Callable[[Any], Any]) -> Any:
        """An RDD of the rows ``function(task)`` yields, one Spark task per task (a DataFrame source)."""
        return self.context.parallelize(list(tasks), max(1, len(tasks))).flatMap(function)


def _finished_result_tasks(sc: Any, group: str) -> int:
    """Finished tasks of the result stage (highest stage id) of the group's latest job."""
    tracker = sc.statusTracker()
    jobs = sorted(tracker.getJobIdsForGroup(group))
    job = tracker.getJobInfo(jobs[-1]) if jobs else None
    if job is None or not job.stageIds:
        return 0
    stage = tracker.getStageInfo(max(job.stageIds))
    return stage.numCompletedTasks if stage is not None else 0
