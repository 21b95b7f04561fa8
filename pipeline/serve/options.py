"""Options of ``corpusforge serve``: every default and command-line option written once, here."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipeline.cli_options import option
from pipeline.errors import UserInputError


@dataclass(frozen=True)
class ServeModelOptions:
    """Which exported model to serve, where, and how requests are batched."""

    model: Path = option(help="folder written by corpusforge export", parse=Path)
    host: str = option("127.0.0.1", help="address to listen on (loopback only unless you change it)")
    port: int = option(8080, help="port (0: any free port)")
    max_batch: int = option(
        32, help="most items (texts or images) the batcher runs through the model at once"
    )
    max_wait_ms: float = option(
        5.0, help="how long the batcher waits for more requests after the first one of a batch"
    )
    threads: int = option(0, help="onnxruntime threads per encoder (0: onnxruntime's default, all cores)")
    max_items: int = option(256, help="most texts plus images one request may hold")
    max_body_mb: float = option(32.0, help="largest request body accepted, in MiB")
    timeout_s: float = option(120.0, help="how long a request waits for its batch before a 503")

    def __post_init__(self) -> None:
        if self.max_batch < 1:
            raise UserInputError(f"--max-batch must be >= 1, got {self.max_batch}")
        if self.max_wait_ms < 0:
            raise UserInputError(f"--max-wait-ms must be >= 0, got {self.max_wait_ms}")
        if self.threads < 0:
            raise UserInputError(f"--threads must be >= 0, got {self.threads}")
        if self.max_items < 1 or self.max_body_mb <= 0 or self.timeout_s <= 0:
            raise UserInputError("--max-items, --max-body-mb and --timeout-s must be positive")
        if not 0 <= self.port <= 65535:
            raise UserInputError(f"--port must be 0-65535, got {self.port}")
