"""The stored image embeddings of labelled samples (``scores/embeddings/NNNNN_image.npy``).

Row ``i`` of a score shard's embeddings file belongs to row ``i`` of its ``scores/NNNNN.parquet``
(written together by ``jobs/score.py --save-embeddings``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from pipeline.dataset import Dataset
from pipeline.errors import UserInputError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LabelledEmbeddings:
    """Embeddings (float32, N x dim) of the labelled uids found, in a stable order (by uid)."""

    uids: list[str]
    embeddings: np.ndarray
    labels: np.ndarray
    model: str
    pretrained: str


def labelled_embeddings(dataset_url: str, labels: dict[str, float], examples: int = 5) -> LabelledEmbeddings:
    """The stored image embedding of every labelled uid; ``UserInputError`` if any is missing.

    Fails naming the count and a few examples of uids that are no scored sample of the dataset,
    and the score shards without saved embeddings.
    """
    dataset = Dataset(dataset_url)
    shards = dataset.scores.complete_indices()
    if not shards:
        raise UserInputError(
            f"{dataset.scores.display()} has no complete score shards: "
            "run jobs/score.py --save-embeddings first"
        )
    found: dict[str, np.ndarray] = {}
    without: list[str] = []
    model = pretrained = None
    for index in shards:
        shard = dataset.scores.shard(index)
        stats = shard.stats()
        model, pretrained = stats["model"], stats["pretrained"]
        uids = shard.table(["uid"]).column("uid").to_pylist()
        if not any(uid in labels for uid in uids):
            continue
        if not shard.has_embeddings("image"):
            without.append(shard.name)
            continue
        matrix = shard.embeddings("image")
        if matrix.shape[0] != len(uids):
            raise UserInputError(
                f"{dataset.display(*shard.embeddings_file('image'))} has {matrix.shape[0]} rows for "
                f"{len(uids)} scores: the shard is damaged; run jobs/score.py --overwrite --save-embeddings"
            )
        for row, uid in enumerate(uids):
            if uid in labels:
                found[uid] = matrix[row]
    if without:
        raise UserInputError(
            f"score shards {', '.join(without[:5])}{' ...' if len(without) > 5 else ''} of "
            f"{dataset.scores.display()} hold labelled samples but no saved embeddings: run jobs/score.py "
            "--overwrite --save-embeddings"
        )
    unknown = sorted(set(labels) - set(found))
    if unknown:
        raise UserInputError(
            f"{len(unknown)} of {len(labels)} labelled uids are no scored sample of {dataset.url} "
            f"(e.g. {', '.join(unknown[:examples])}): labels of another dataset?"
        )
    order = sorted(found)
    log.info("%d labelled embeddings from %d score shards", len(order), len(shards))
    return LabelledEmbeddings(
        uids=order,
        embeddings=np.stack([found[u] for u in order]).astype(np.float32),
        labels=np.asarray([labels[u] for u in order], dtype=np.float64),
        model=str(model),
        pretrained=str(pretrained),
    )
