"""Options of ``corpusforge export``: every default and command-line option written once, here."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipeline.cli_options import comma_strings, option, show_commas
from pipeline.errors import UserInputError

FORMATS = ("onnx",)
EXPORTERS = ("dynamo", "torchscript")


def comma_ints(text: str) -> tuple[int, ...]:
    """``1,8`` -> ``(1, 8)``."""
    try:
        return tuple(int(part) for part in comma_strings(text))
    except ValueError as exc:
        raise ValueError(f"takes comma-separated integers, got {text!r}") from exc


@dataclass(frozen=True)
class ExportOptions:
    """What to export, where, and how the export is checked."""

    checkpoint: str = option(
        help="a corpusforge train checkpoint or model.pt, or any open_clip checkpoint file (path or URL)"
    )
    output: Path = option(help="folder to write the encoders and model.json into", parse=Path)
    format: str = option("onnx", choices=FORMATS, help="export format")
    model: str = option(
        "", help="open_clip model name; needed when the checkpoint does not name it (not a train checkpoint)"
    )
    exporter: str = option(
        "dynamo",
        choices=EXPORTERS,
        help="torch.onnx exporter: dynamo (torch.export, torch's default) or torchscript (the legacy tracer)",
    )
    opset: int = option(18, help="ONNX opset version")
    tolerance: float = option(1e-4, help="largest absolute difference allowed between onnxruntime and torch")
    verify_batches: tuple[int, ...] = option(
        (1, 8), parse=comma_ints, show=show_commas, help="batch sizes the export is checked at"
    )

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise UserInputError(
                f"--format {self.format!r} is not supported (supported: {', '.join(FORMATS)})"
            )
        if self.exporter not in EXPORTERS:
            raise UserInputError(f"--exporter must be one of {', '.join(EXPORTERS)}, got {self.exporter!r}")
        if not self.tolerance >= 0:
            raise UserInputError(f"--tolerance must be >= 0, got {self.tolerance}")
        if not self.verify_batches or min(self.verify_batches) < 1:
            raise UserInputError(f"--verify-batches must be positive batch sizes, got {self.verify_batches}")
