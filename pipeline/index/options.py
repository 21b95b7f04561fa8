"""Options of the index job: every default and command-line option written once, here."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.cli_options import option
from pipeline.errors import UserInputError
from pipeline.index.params import INDEX_TYPES, parse_memory
from pipeline.storage import storage_url


@dataclass(frozen=True)
class IndexOptions:
    """Everything the index job needs; immutable so it can be shipped to executors."""

    dataset: str = option(
        parse=storage_url, help="dataset root with scores/ saved with --save-embeddings (any fsspec URL)"
    )
    text: bool = option(False, help="also index the text embeddings (index/text.faiss)")
    index_type: str = option(
        "auto",
        choices=INDEX_TYPES,
        help="auto: flat (exact) for small corpora, else HNSW if it fits --max-index-memory, else IVF-PQ",
    )
    max_index_memory: str = option("4G", help="memory one index may take (e.g. 4G, 512M); sizes IVF-PQ codes")
    rerank: bool = option(
        True,
        toggle=True,
        help="IVF-PQ: re-rank 10x the results asked for by exact cosine with the stored vectors, read "
        "from scores/embeddings/ at search time (no RAM; --no-rerank: the codes' ranking only)",
    )
    recall_queries: int = option(
        1000, help="stored embeddings searched to measure recall@10 against exact search"
    )
    target_recall: float = option(
        0.95, help="recall@10 the smallest nprobe (IVF-PQ) or efSearch (HNSW) kept must reach"
    )
    seed: int = option(0, help="seed of the training sample and of the recall queries")
    overwrite: bool = option(False, help="delete index/ first instead of resuming")

    def __post_init__(self) -> None:
        parse_memory(self.max_index_memory)
        if self.recall_queries < 1:
            raise UserInputError(f"--recall-queries must be >= 1, got {self.recall_queries}")
        if not 0 < self.target_recall <= 1:
            raise UserInputError(f"--target-recall must be in (0, 1], got {self.target_recall}")

    @property
    def kinds(self) -> tuple[str, ...]:
        return ("image", "text") if self.text else ("image",)

    @property
    def memory_bytes(self) -> int:
        return parse_memory(self.max_index_memory)
