"""Running one Spark task per item with a progress bar on the driver.

The bar counts finished tasks (from Spark's status tracker) and shows running totals of chosen
fields of the task results, gathered with accumulators, so a long job shows progress without
waiting for ``collect()`` to return.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

from tqdm import tqdm


def run_with_progress(
    spark: Any,
    items: Sequence[Any],
    task: Callable[[Any], dict[str, Any]],
    group: str,
    description: str,
    counters: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """Run ``task`` on every item, one Spark task each; return the results in item order."""
    if not items:
        return []
    sc = spark.sparkContext
    sc.setJobGroup(group, f"{description}: {len(items)} tasks")
    accumulators = {name: sc.accumulator(0) for name in counters}

    def counted(item: Any) -> dict[str, Any]:
        result = task(item)
        for name, accumulator in accumulators.items():
            accumulator.add(int(result.get(name, 0)))
        return result

    results: list[dict[str, Any]] = []
    failure: list[BaseException] = []

    def collect() -> None:
        try:
            results.extend(sc.parallelize(list(items), len(items)).map(counted).collect())
        except BaseException as exc:  # re-raised on the driver thread below
            failure.append(exc)

    thread = threading.Thread(target=collect, name=f"{group}-collect", daemon=True)
    thread.start()
    with tqdm(total=len(items), desc=description, unit=" task") as progress:
        while thread.is_alive():
            thread.join(timeout=1.0)
            done = min(_completed_tasks(sc, group), len(items))
            if done > progress.n:
                progress.update(done - progress.n)
                progress.set_postfix({k: a.value for k, a in accumulators.items()}, refresh=False)
        progress.update(len(items) - progress.n)
    if failure:
        raise failure[0]
    return results


def _completed_tasks(sc: Any, group: str) -> int:
    tracker = sc.statusTracker()
    done = 0
    for job_id in tracker.getJobIdsForGroup(group):
        job = tracker.getJobInfo(job_id)
        for stage_id in job.stageIds if job is not None else ():
            stage = tracker.getStageInfo(stage_id)
            if stage is not None:
                done += stage.numCompletedTasks
    return done
