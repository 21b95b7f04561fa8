"""Options of ``corpusforge explore``."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.cli_options import option
from pipeline.errors import UserInputError


@dataclass(frozen=True)
class ExploreOptions:
    """``corpusforge explore``: the dataset to look into and how the page is served."""

    dataset: str = option(help="dataset root (any fsspec URL) with scores, embeddings and an index")
    host: str = option("127.0.0.1", help="address to listen on (only loopback unless you mean it)")
    port: int = option(8765, help="port (0 picks a free one)")
    page_size: int = option(48, help="samples per result page")
    max_results: int = option(
        1000,
        help="a text, image or 'more like this' search returns at most this many samples (after filters)",
    )
    pretrained: str = option(
        "",
        show=lambda _: "the weights the score job recorded",
        help="weights of the dataset's CLIP model for text and image queries, when the path the score "
        "job recorded has moved",
    )
    device: str = option("cpu", help="device of the query encoder (cpu, cuda, auto)")

    def __post_init__(self) -> None:
        if not 1 <= self.page_size <= 1000:
            raise UserInputError(f"--page-size must be in 1..1000, got {self.page_size}")
        if self.max_results < 1:
            raise UserInputError(f"--max-results must be >= 1, got {self.max_results}")
        if not 0 <= self.port <= 65535:
            raise UserInputError(f"--port must be in 0..65535, got {self.port}")
