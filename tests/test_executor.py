"""The one stage executor: complete tasks skipped, per-worker set-up once, resources, failures."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pipeline.errors import UserInputError
from pipeline.executor import SparkExecutor, run_task, worker_state
from pipeline.stage import Resources, ShardStep


@dataclass(frozen=True)
class CountingStep(ShardStep[int, dict[str, Any]]):
    """Writes ``folder/<task>.done`` with the pid and the id of the worker state that did it."""

    folder: str
    fail_on: int = -1

    name = "counting"
    description = "counting"
    counters = ("items",)

    def completed(self, task: int) -> dict[str, Any] | None:
        done = Path(self.folder) / f"{task}.done"
        return {"items": 0, "task": task} if done.exists() else None

    def setup_key(self) -> tuple[str, str]:
        return ("counting", self.folder)

    def setup(self) -> dict[str, Any]:
        marker = Path(self.folder) / f"setup-{os.getpid()}-{len(os.listdir(self.folder))}"
        marker.write_text("")
        return {"pid": os.getpid(), "closed": False}

    def teardown(self, state: dict[str, Any]) -> None:
        state["closed"] = True

    def process(self, task: int, state: dict[str, Any]) -> dict[str, Any]:
        if task == self.fail_on:
            raise ValueError(f"task {task} failed on purpose")
        (Path(self.folder) / f"{task}.done").write_text(str(state["pid"]))
        return {"items": task, "task": task, "pid": state["pid"]}


def test_worker_state_is_built_once_per_key_and_torn_down_for_another(tmp_path: Path) -> None:
    first = CountingStep(str(tmp_path / "a"))
    (tmp_path / "a").mkdir()
    state = worker_state(first)
    assert worker_state(first) is state
    assert run_task(first, 1)["pid"] == os.getpid()
    other = CountingStep(str(tmp_path / "b"))
    (tmp_path / "b").mkdir()
    assert worker_state(other) is not state and state["closed"] is True
    assert len([p for p in (tmp_path / "a").iterdir() if p.name.startswith("setup-")]) == 1


@pytest.mark.parametrize(("cpus", "gpus"), [(0, 0.0), (1, -1.0), (1, 0.75)])
def test_impossible_resources_are_refused(cpus: int, gpus: float) -> None:
    with pytest.raises(UserInputError, match="CPU core|GPUs per task"):
        Resources(cpus=cpus, gpus=gpus)


def test_resources_that_spark_can_schedule() -> None:
    assert Resources().is_default
    assert not Resources(cpus=2, gpus=0.25).is_default
    assert Resources(gpus=2).gpus == 2


def test_spark_runs_only_incomplete_tasks_and_keeps_their_order(spark, tmp_path: Path) -> None:
    folder = tmp_path / "work"
    folder.mkdir()
    (folder / "2.done").write_text("earlier run")
    executor = SparkExecutor(spark)
    results = executor.map(CountingStep(str(folder)), [0, 1, 2, 3, 4, 5])
    assert [r["task"] for r in results] == [0, 1, 2, 3, 4, 5]
    assert [bool(r.get("resumed")) for r in results] == [False, False, True, False, False, False]
    assert (folder / "2.done").read_text() == "earlier run"
    # Everything is complete now: a rerun starts no Spark task.
    again = executor.map(CountingStep(str(folder)), [0, 1, 2, 3, 4, 5])
    assert all(r["resumed"] for r in again)


def test_set_up_runs_once_per_worker_process_not_once_per_task(spark, tmp_path: Path) -> None:
    # How many Python workers Spark forks depends on the machine's load (a worker still handing
    # back its result is not reused), so the test counts set-ups per process, over enough tiny
    # tasks that workers must have been reused.
    folder = tmp_path / "work"
    folder.mkdir()
    results = SparkExecutor(spark).map(CountingStep(str(folder)), list(range(40)))
    setups = [p.name.split("-")[1] for p in folder.iterdir() if p.name.startswith("setup-")]
    pids = {str(r["pid"]) for r in results}
    assert sorted(setups) == sorted(pids)  # every worker process set up once, and only those
    assert len(pids) < 40


def test_a_failing_task_fails_the_step_with_its_reason(spark, tmp_path: Path) -> None:
    folder = tmp_path / "work"
    folder.mkdir()
    with pytest.raises(Exception, match="task 1 failed on purpose"):
        SparkExecutor(spark).map(CountingStep(str(folder), fail_on=1), [0, 1, 2])
