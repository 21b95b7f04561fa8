"""The two encoders as ONNX graphs with a dynamic batch axis.

Each graph wraps one of open_clip's ``encode_image`` / ``encode_text`` with ``normalize=True``:
the outputs are unit-length embeddings, so a dot product is the cosine similarity. Both
exporters of torch 2.14 export open_clip's models as they are: ``dynamo`` (``torch.export``, the
default of ``torch.onnx.export``) and ``torchscript`` (the legacy tracer, about 5x faster to run).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from pipeline.export.manifest import IMAGE_INPUT, OUTPUT, TEXT_INPUT

log = logging.getLogger(__name__)

# Example batch of the export: 2, since torch.export specialises a dimension of size 1.
_EXAMPLE_BATCH = 2
# Above this many parameter bytes the weights go to a side file (a protobuf holds at most 2 GiB).
_INLINE_LIMIT = 1 << 30


def _wrappers(model: Any) -> tuple[Any, Any]:
    import torch

    class ImageEncoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, pixels: torch.Tensor) -> torch.Tensor:
            return self.model.encode_image(pixels, normalize=True)

    class TextEncoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, tokens: torch.Tensor) -> torch.Tensor:
            return self.model.encode_text(tokens, normalize=True)

    return ImageEncoder().eval(), TextEncoder().eval()


def export_encoders(
    model: Any,
    image_size: int,
    text_example: tuple[int, int, int],
    image_path: Path,
    text_path: Path,
    exporter: str,
    opset: int,
) -> dict[str, float]:
    """Write both graphs; returns the seconds each export took.

    ``text_example`` is ``(context_length, start_id, end_id)`` of the model's tokenizer: the example
    rows are start, end, padding (ids the token embedding has, whatever the vocabulary's size).
    """
    import torch

    image_encoder, text_encoder = _wrappers(model)
    pixels = torch.randn(_EXAMPLE_BATCH, 3, image_size, image_size)
    context_length, start_id, end_id = text_example
    tokens = torch.zeros(_EXAMPLE_BATCH, context_length, dtype=torch.long)
    tokens[:, 0], tokens[:, 1] = start_id, end_id
    inline = sum(p.numel() * p.element_size() for p in model.parameters()) < _INLINE_LIMIT
    seconds = {}
    for noisy in ("onnx_ir", "onnxscript"):  # INFO lines for every rewritten initializer
        logging.getLogger(noisy).setLevel(logging.WARNING)
    for role, module, example, name, path in (
        ("image", image_encoder, pixels, IMAGE_INPUT, image_path),
        ("text", text_encoder, tokens, TEXT_INPUT, text_path),
    ):
        started = time.monotonic()
        if exporter == "dynamo":
            kwargs: dict[str, Any] = {
                "dynamo": True,
                "dynamic_shapes": {name: {0: torch.export.Dim("batch")}},
                "external_data": not inline,
                "verbose": False,
            }
        else:
            kwargs = {"dynamo": False, "dynamic_axes": {name: {0: "batch"}, OUTPUT: {0: "batch"}}}
        with torch.no_grad():
            torch.onnx.export(
                module,
                (example,),
                str(path),
                input_names=[name],
                output_names=[OUTPUT],
                opset_version=opset,
                **kwargs,
            )
        seconds[role] = round(time.monotonic() - started, 3)
        log.info("exported the %s encoder to %s with %s in %.1f s", role, path, exporter, seconds[role])
    return seconds
