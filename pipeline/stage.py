"""The one shape of a stage, and of the per-shard work it hands to the executor.

A :class:`Stage` (download, score, dedup, build_shards) has typed options (a frozen dataclass
whose fields declare the command line, see :mod:`pipeline.cli_options`), an input check that
runs on the driver before Spark starts, a ``run`` that plans the work and returns the summary,
and a ``format_summary`` for the terminal. What runs on executors is a :class:`ShardStep`: a
picklable object with per-worker ``setup``/``teardown`` (a model, a thread pool), a
``process(task, state)`` per task (usually one shard, committed with :mod:`pipeline.runner`), the
counters its progress bar shows, and the resources one task needs (mapped to Spark task
resources by :class:`pipeline.executor.SparkExecutor`).
"""

from __future__ import annotations

import argparse
from abc import ABC, abstractmethod
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pipeline.cli_options import options_parser, parse_options
from pipeline.errors import UserInputError

if TYPE_CHECKING:
    from pipeline.executor import SparkExecutor

TaskT = TypeVar("TaskT")
StateT = TypeVar("StateT")
OptionsT = TypeVar("OptionsT")


@dataclass(frozen=True)
class Resources:
    """What one task of a step needs: CPU cores and GPUs (fractions below 1 share a GPU)."""

    cpus: int = 1
    gpus: float = 0.0

    def __post_init__(self) -> None:
        if self.cpus < 1:
            raise UserInputError(f"a task needs at least one CPU core, got {self.cpus}")
        if self.gpus < 0 or (self.gpus > 0.5 and self.gpus != int(self.gpus)):
            raise UserInputError(
                f"GPUs per task must be 0, a fraction up to 0.5 or a whole number, got {self.gpus}"
            )

    @property
    def is_default(self) -> bool:
        return self == Resources()


class ShardStep(ABC, Generic[TaskT, StateT]):
    """Work the executor runs once per task, on executors (must pickle)."""

    #: Spark job group and progress bar label.
    name: str = "step"
    description: str = "working"
    #: Integer fields of ``process``'s result summed into the progress bar while the step runs.
    counters: tuple[str, ...] = ()

    def resources(self) -> Resources:
        """What one task needs (default: one core, no GPU)."""
        return Resources()

    def completed(self, task: TaskT) -> dict[str, Any] | None:
        """The committed result of ``task`` when an earlier run finished it (checked on the
        driver, so complete shards never become Spark tasks); None: it must run."""
        return None

    def setup_key(self) -> Hashable | None:
        """Equal keys share one ``setup()`` per worker process; None: the step has no state."""
        return None

    def setup(self) -> StateT:
        """Build the per-worker state (load a model, start a pool): once per worker process."""
        return None  # type: ignore[return-value]

    def teardown(self, state: StateT) -> None:
        """Release the per-worker state (when another step needs the worker, or at exit)."""

    @abstractmethod
    def process(self, task: TaskT, state: StateT) -> dict[str, Any]:
        """Do one task and return its result (a small dict: stats, counts)."""


class Stage(ABC, Generic[OptionsT]):
    """A job of the pipeline, as ``spark-submit jobs/NAME.py`` runs it."""

    name: str
    options_type: type
    description: str

    @property
    def app_name(self) -> str:
        return f"corpusforge-{self.name.replace('_', '-')}"

    def parser(self) -> argparse.ArgumentParser:
        """The job's command line, built from its options dataclass."""
        return options_parser(self.options_type, f"spark-submit jobs/{self.name}.py", self.description)

    def parse(self, argv: Sequence[str] | None = None) -> OptionsT:
        return parse_options(self.options_type, self.parser(), argv)

    @abstractmethod
    def check_inputs(self, options: OptionsT) -> None:
        """Fail before Spark starts (raise ``UserInputError`` naming what is wrong)."""

    @abstractmethod
    def run(self, executor: SparkExecutor, options: OptionsT) -> dict[str, Any]:
        """Do the job (resuming what earlier runs committed); return and write its summary."""

    @abstractmethod
    def format_summary(self, summary: dict[str, Any]) -> str:
        """The summary as the terminal shows it."""
