"""Options of the score job: every default and command-line option written once, here."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.cli_options import comma_floats, option, show_commas
from pipeline.errors import UserInputError
from pipeline.storage import storage_url

DEFAULT_THRESHOLDS = (0.2, 0.25, 0.28, 0.3, 0.32, 0.35)
DEFAULT_TOP_FRACTIONS = (0.1, 0.2, 0.3, 0.5, 0.7)


@dataclass(frozen=True)
class ScoreOptions:
    """Everything the score job needs; immutable so it can be shipped to executors."""

    dataset: str = option(parse=storage_url, help="dataset root with raw/ shards (any fsspec URL)")
    model: str = option(help="open_clip model name, e.g. ViT-B-32 or corpusforge-tiny")
    pretrained: str = option(
        parse=storage_url, help="open_clip pretrained tag (needs the hub) or a checkpoint (path or URL)"
    )
    batch_size: int = option(256, help="pairs per forward pass")
    device: str = option("auto", help="auto (GPU if visible, else CPU), cpu, cuda, cuda:N")
    loader_threads: int = option(2, help="threads decoding and preprocessing images")
    task_cpus: int = option(
        1, help="CPU cores one Spark task asks for (a task resource profile on clusters that schedule it)"
    )
    task_gpus: float = option(
        0.0,
        help="GPUs one Spark task asks for (0: none asked; a task given a GPU by Spark scores on it)",
    )
    save_embeddings: bool = option(
        False, help="also write float16 image and text embeddings to scores/embeddings/"
    )
    thresholds: tuple[float, ...] = option(
        DEFAULT_THRESHOLDS,
        parse=comma_floats,
        show=show_commas,
        help="absolute thresholds to report the kept fraction for",
    )
    top_fractions: tuple[float, ...] = option(
        DEFAULT_TOP_FRACTIONS,
        parse=comma_floats,
        show=show_commas,
        help="fractions to keep (DataComp style) to report the threshold for",
    )
    overwrite: bool = option(False, help="delete scores/ first instead of resuming")
    # Issue 18 (probes): classifier heads applied to the image embeddings (scores/probes/).
    probes: tuple[str, ...] = option(
        (),
        flag="--probe",
        parse=storage_url,
        repeat=True,
        metavar="FILE",
        help="a probe file of corpusforge probe train to apply to every image embedding (scores in "
        "scores/probes/); an already scored dataset is not rescored, its stored embeddings are read",
    )

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise UserInputError(f"--batch-size must be >= 1, got {self.batch_size}")
        if self.loader_threads < 1:
            raise UserInputError(f"--loader-threads must be >= 1, got {self.loader_threads}")
        if self.task_cpus < 1 or self.task_gpus < 0:
            raise UserInputError("--task-cpus must be >= 1 and --task-gpus >= 0")
        if not all(0 < f <= 1 for f in self.top_fractions):
            raise UserInputError(f"--top-fractions must be in (0, 1], got {self.top_fractions}")
