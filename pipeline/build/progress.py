"""Collecting a Spark RDD's results with a progress bar of finished tasks on the driver."""

from __future__ import annotations

import threading
from typing import Any

from tqdm import tqdm


def collect_with_progress(spark: Any, rdd: Any, tasks: int, group: str, description: str) -> list[Any]:
    """``rdd.collect()`` in a thread while a tqdm bar counts the finished tasks of its last stage.

    ``tasks`` is the number of partitions of ``rdd`` (one task each in the result stage).
    """
    sc = spark.sparkContext
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
    with tqdm(total=tasks, desc=description, unit=" task") as progress:
        while thread.is_alive():
            thread.join(timeout=1.0)
            done = min(_finished_result_tasks(sc, group), tasks)
            if done > progress.n:
                progress.update(done - progress.n)
        progress.update(tasks - progress.n)
    sc.setJobGroup("", "")
    if failure:
        raise failure[0]
    return results


def _finished_result_tasks(sc: Any, group: str) -> int:
    """Finished tasks of the result stage (highest stage id) of the group's latest job."""
    tracker = sc.statusTracker()
    jobs = sorted(tracker.getJobIdsForGroup(group))
    job = tracker.getJobInfo(jobs[-1]) if jobs else None
    if job is None or not job.stageIds:
        return 0
    stage = tracker.getStageInfo(max(job.stageIds))
    return stage.numCompletedTasks if stage is not None else 0
