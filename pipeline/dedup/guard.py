"""The low-complexity rule: pHash matches of near-uniform images need a second opinion.

A candidate pair (within the pHash distance) is accepted when neither image is low-complexity
(thumbnail standard deviation below ``min_complexity``). Otherwise it is accepted only if the
8x8 colour signatures are also close (mean absolute difference at most
``max_signature_distance``): two flat images of different colours, or a flat image and a faint
gradient, then no longer match. When a side's signature is unknown (precomputed benchmark
hashes carry none), the pair is accepted: for decontamination a false positive costs one image,
a miss costs a contaminated evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.dedup.complexity import signature_distance


@dataclass(frozen=True)
class ImageFeatures:
    """What the checks look at for one image (any may be unknown): the low-complexity rule's
    complexity and colour signature, and the verification thumbnail (pipeline.dedup.verify) with,
    for benchmark images, the thumbnails of its central crops (``zoomed``), and the thumbnail of
    the picture inside its letterbox or pillarbox bars (``unbarred``, pipeline.dedup.bars)."""

    complexity: float | None
    signature: np.ndarray | None
    thumbnail: bytes | None = None
    zoomed: bytes | None = None
    unbarred: bytes | None = None

    @classmethod
    def from_bytes(
        cls,
        complexity: float | None,
        signature: bytes | None,
        thumbnail: bytes | None = None,
        zoomed: bytes | None = None,
        unbarred: bytes | None = None,
    ) -> ImageFeatures:
        array = None if signature is None else np.frombuffer(signature, dtype=np.uint8).reshape(8, 8, 3)
        return cls(complexity, array, thumbnail, zoomed, unbarred)

    def mirrored(self) -> ImageFeatures:
        """The features of the mirror image (for matches found with the flipped hash)."""
        signature = None if self.signature is None else self.signature[:, ::-1]
        return ImageFeatures(
            self.complexity,
            signature,
            _mirror(self.thumbnail),
            _mirror(self.zoomed),
            _mirror(self.unbarred),
        )


def _mirror(thumbnails: bytes | None) -> bytes | None:
    """Square RGB thumbnails (one or several joined) mirrored left to right."""
    if thumbnails is None:
        return None
    side = 32
    pixels = np.frombuffer(thumbnails, dtype=np.uint8).reshape(-1, side, side, 3)
    return np.ascontiguousarray(pixels[:, :, ::-1]).tobytes()


UNKNOWN = ImageFeatures(None, None)


@dataclass(frozen=True)
class ComplexityGuard:
    min_complexity: float
    max_signature_distance: float

    def is_low(self, features: ImageFeatures) -> bool:
        return features.complexity is not None and features.complexity < self.min_complexity

    def accepts(self, a: ImageFeatures, b: ImageFeatures) -> bool:
        """Whether a pHash candidate pair of images with these features is a real match."""
        if not (self.is_low(a) or self.is_low(b)):
            return True
        if a.signature is None or b.signature is None:
            return True
        return signature_distance(a.signature, b.signature) <= self.max_signature_distance
