"""The index job's inputs, checked on the driver before Spark starts: the score shards and their
saved embeddings (complete, one model, one width, as many rows as the scores table)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.dataset import Dataset, ScoresShard
from pipeline.errors import UserInputError

SCORE_COMMAND = (
    "spark-submit jobs/score.py --dataset {dir} --model MODEL --pretrained WEIGHTS --save-embeddings"
)


@dataclass(frozen=True)
class ScoredShards:
    """The score shards to index: their indices, rows, tokens, and the model of their embeddings."""

    shards: tuple[int, ...]
    rows: tuple[int, ...]  # vectors of each shard
    tokens: tuple[str, ...]  # marker token of each score shard (changes when it is rescored)
    model: str
    pretrained: str
    dim: int

    @property
    def vectors(self) -> int:
        return sum(self.rows)

    def first_ids(self) -> list[int]:
        """The index id of each shard's first vector (shards in order)."""
        starts, total = [], 0
        for rows in self.rows:
            starts.append(total)
            total += rows
        return starts


def scored_shards(dataset: Dataset, kinds: tuple[str, ...]) -> ScoredShards:
    """The complete score shards with embeddings of every kind in ``kinds``.

    Raises ``UserInputError`` naming the folder or shard: no scores, an incomplete shard, a raw
    shard not scored (or redone since), no saved embeddings, several models, embeddings whose
    row count or width differs.
    """
    from pipeline.score.shard_scorer import current_scores

    folder = dataset.scores
    command = SCORE_COMMAND.format(dir=dataset.display())
    complete = folder.complete_indices() if folder.exists() else []
    if not complete:
        raise UserInputError(f"{folder.display()} holds no complete score shards: run {command} first")
    unfinished = sorted(set(folder.table_indices()) - set(complete))
    unscored = [i for i in dataset.raw.complete_indices() if current_scores(dataset, i) is None]
    for shard in sorted({*unfinished, *unscored}):
        raise UserInputError(
            f"score shard {shard:05d} is incomplete or out of date in {folder.display()} (the raw shard has "
            f"no current scores): run {command} again to finish it"
        )
    models: dict[tuple[str, str], int] = {}
    rows, tokens, dims = [], [], set()
    for index in complete:
        shard = folder.shard(index)
        stats = shard.stats()
        models.setdefault((stats["model"], stats["pretrained"]), index)
        if len(models) > 1:
            (m0, p0), s0 = next(iter(models.items()))
            raise UserInputError(
                f"score shard {index:05d} was scored with {stats['model']} ({stats['pretrained']}) but shard "
                f"{s0:05d} with {m0} ({p0}); an index holds one model's embeddings: rescore with one "
                "(jobs/score.py --overwrite)"
            )
        count = shard.table_file.check().metadata.num_rows
        for kind in kinds:
            shape = _embeddings_shape(dataset, shard, kind, command)
            if shape[0] != count:
                raise UserInputError(
                    f"{dataset.display(*shard.embeddings_file(kind))} has {shape[0]} rows but score shard "
                    f"{index:05d} has {count}; rescore it: {command} --overwrite"
                )
            dims.add(shape[1])
        rows.append(count)
        tokens.append(shard.token())
    if len(dims) > 1:
        raise UserInputError(f"the embeddings in {folder.display()} have several widths: {sorted(dims)}")
    (model, pretrained), _ = models.popitem()
    return ScoredShards(tuple(complete), tuple(rows), tuple(tokens), model, pretrained, dims.pop())


def _embeddings_shape(dataset: Dataset, shard: ScoresShard, kind: str, command: str) -> tuple[int, int]:
    """(rows, width) from the ``.npy`` header alone."""
    parts = shard.embeddings_file(kind)
    if not dataset.storage.exists(*parts):
        raise UserInputError(
            f"{dataset.display(*parts)} is missing: score shard {shard.index:05d} was scored without "
            f"--save-embeddings; rerun {command} --overwrite"
        )
    with dataset.storage.open(*parts) as handle:
        major, _ = np.lib.format.read_magic(handle)
        npy = np.lib.format
        read_header = npy.read_array_header_1_0 if major == 1 else npy.read_array_header_2_0
        shape, _, _ = read_header(handle)
    if len(shape) != 2:
        raise UserInputError(f"{dataset.display(*parts)}: expected a (rows, width) matrix, got shape {shape}")
    return int(shape[0]), int(shape[1])


def load_embeddings(dataset: Dataset, shard: int, kind: str) -> np.ndarray:
    """The stored embeddings of one score shard as float32 (as saved: float16)."""
    return dataset.scores.shard(shard).embeddings(kind).astype(np.float32)
