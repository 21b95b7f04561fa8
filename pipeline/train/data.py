"""The training data stream: shards split per rank and per loader worker, shuffled, batched.

Each loader worker of each rank is one *consumer* (``rank * workers + worker``) that runs an
endless, deterministic stream of epochs. In epoch ``e`` the shard list is shuffled with a seed
common to all ranks and consumer ``c`` reads every ``n``-th shard starting at ``c``, so consumers
never share a shard within an epoch (resampled mode instead draws shards with replacement, with
a seed of its own per consumer and epoch). Samples then pass a shuffle buffer, are decoded,
preprocessed and tokenised, and leave the worker in batches.

The stream is a pure function of (seed, consumer, epoch), so its position is two integers: the
epoch and the number of samples taken from the shuffle buffer in it. Every batch carries its
worker's position; a resumed run skips to it by reading (not decoding) the same tar bytes.
Batches leave a PyTorch ``DataLoader`` round-robin over its workers; a resumed loader therefore
renames its workers (``logical = (physical + batches_done) % workers``) so the order continues.
"""

from __future__ import annotations

import io
import logging
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from PIL import Image
from torch.utils.data import IterableDataset

from pipeline.errors import UserInputError
from pipeline.train.tario import Counters, RawSample, read_shard

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StreamConfig:
    """What defines a stream: the shards and how they are sampled."""

    urls: tuple[str, ...]
    batch_size: int
    seed: int = 0
    resampled: bool = False
    shard_shuffle: bool = True
    shuffle_buffer: int = 1000
    decode_side: int = 0  # see decode_image; 0 decodes at full size


@dataclass
class Position:
    """Where one consumer's stream stands: next sample to take is sample ``offset`` of ``epoch``."""

    epoch: int = 0
    offset: int = 0
    counters: Counters = field(default_factory=Counters)

    def to_dict(self) -> dict[str, int]:
        return {
            "epoch": self.epoch,
            "offset": self.offset,
            "corrupt_samples": self.counters.corrupt_samples,
            "corrupt_shards": self.counters.corrupt_shards,
        }

    @classmethod
    def from_dict(cls, data: dict[str, int]) -> Position:
        return cls(data["epoch"], data["offset"], Counters(data["corrupt_samples"], data["corrupt_shards"]))


def check_layout(config: StreamConfig, world_size: int, workers: int) -> None:
    """Without resampling, every consumer needs at least one shard per epoch."""
    consumers = world_size * max(1, workers)
    if not config.resampled and len(config.urls) < consumers:
        raise UserInputError(
            f"{len(config.urls)} shards cannot be split over {world_size} process(es) x "
            f"{max(1, workers)} loader worker(s): use fewer --workers, more shards, or --resampled"
        )


def epoch_shards(config: StreamConfig, epoch: int, consumer: int, consumers: int) -> list[str]:
    """The shards consumer ``consumer`` reads in ``epoch``, in reading order."""
    urls = list(config.urls)
    if config.resampled:
        rng = random.Random(f"resample-{config.seed}-{epoch}-{consumer}")
        return [rng.choice(urls) for _ in range(max(1, len(urls) // consumers))]
    if config.shard_shuffle:
        random.Random(f"shards-{config.seed}-{epoch}").shuffle(urls)
    return urls[consumer::consumers]


def shuffled(samples: Iterator[RawSample], size: int, rng: random.Random) -> Iterator[RawSample]:
    """A shuffle buffer of ``size`` samples (``size`` <= 1: no shuffling)."""
    if size <= 1:
        yield from samples
        return
    buffer: list[RawSample] = []
    for sample in samples:
        if len(buffer) < size:
            buffer.append(sample)
            continue
        i = rng.randrange(size)
        yield buffer[i]
        buffer[i] = sample
    rng.shuffle(buffer)
    yield from buffer


def epoch_samples(
    config: StreamConfig, epoch: int, consumer: int, consumers: int, counters: Counters
) -> Iterator[RawSample]:
    """Undecoded samples of one consumer's epoch, after the shuffle buffer."""

    def read() -> Iterator[RawSample]:
        for url in epoch_shards(config, epoch, consumer, consumers):
            yield from read_shard(url, counters)

    rng = random.Random(f"buffer-{config.seed}-{epoch}-{consumer}")
    return shuffled(read(), config.shuffle_buffer, rng)


def decode_image(data: bytes, min_side: int = 0) -> Image.Image:
    """Decode fully to RGB (raises on any damage).

    With ``min_side``, a JPEG is decoded at the smallest DCT scale (1/2, 1/4, 1/8) that keeps both
    sides at least ``min_side`` (PIL's ``draft``): several times less work for large stored images.
    """
    with Image.open(io.BytesIO(data)) as image:
        if min_side:
            image.draft("RGB", (min_side, min_side))
        return image.convert("RGB")


class TrainStream(IterableDataset):
    """An endless batch iterator for one process (run by each ``DataLoader`` worker).

    Batches are dicts: ``images`` (B,3,H,W), ``texts`` (B,L), ``keys``, ``worker`` (logical id)
    and ``position`` (that worker's position after the batch, see :class:`Position`). Skip counts
    are exact within a run; across a resume, damage met in read-ahead may be counted twice.
    """

    def __init__(
        self,
        config: StreamConfig,
        preprocess: Callable[[Image.Image], Any],
        tokenizer: Callable[[list[str]], Any],
        rank: int = 0,
        world_size: int = 1,
        workers: int = 0,
        start: dict[int, Position] | None = None,
        worker_offset: int = 0,
    ) -> None:
        self.config = config
        self.preprocess = preprocess
        self.tokenizer = tokenizer
        self.rank = rank
        self.world_size = world_size
        self.workers = max(1, workers)
        self.start = start or {}
        self.worker_offset = worker_offset

    def __iter__(self) -> Iterator[dict[str, Any]]:
        import torch
        from torch.utils.data import get_worker_info

        info = get_worker_info()
        physical = info.id if info is not None else 0
        logical = (physical + self.worker_offset) % self.workers
        consumer = self.rank * self.workers + logical
        consumers = self.world_size * self.workers
        start = self.start.get(logical, Position())
        position = Position(start.epoch, start.offset, Counters(**vars(start.counters)))
        if info is not None:
            torch.set_num_threads(1)  # loader workers are processes already; threads would oversubscribe
        pending: list[tuple[RawSample, Any]] = []
        saved, seeded = None, False
        for epoch in _count(position.epoch):
            position.epoch, position.offset = epoch, 0
            skip = start.offset if epoch == start.epoch else 0
            scan, baseline = Counters(), Counters()  # tar-level damage of this epoch; baseline: skipped part
            used = 0
            for sample in epoch_samples(self.config, epoch, consumer, consumers, scan):
                position.offset += 1
                if position.offset <= skip:
                    used += 1
                    baseline = Counters(**vars(scan))
                    continue
                if not seeded:
                    saved = self._seed_batch(
                        _mix(self.config.seed, consumer, position.epoch, position.offset)
                    )
                    seeded = True
                pixels = self._pixels(sample, position)
                if pixels is None:
                    continue
                used += 1
                pending.append((sample, pixels))
                if len(pending) == self.config.batch_size:
                    batch = self._batch(pending, logical, position, _delta(scan, baseline))
                    pending, seeded = [], False
                    if saved is not None:
                        torch.set_rng_state(saved)
                    yield batch
            position.counters = _add(position.counters, _delta(scan, baseline))
            if used == 0:
                raise UserInputError(
                    f"no usable sample in epoch {epoch} of rank {self.rank} worker {logical} "
                    f"({len(epoch_shards(self.config, epoch, consumer, consumers))} shards read; so far "
                    f"{position.counters.corrupt_samples} corrupt samples and "
                    f"{position.counters.corrupt_shards} unreadable shards skipped; see the warnings)"
                )

    def _seed_batch(self, seed: int) -> Any:
        """Seed the augmentation of the next batch by its stream position, so a resumed run draws
        the same crops. In the training process itself (no loader workers) the global RNG state is
        returned, to be put back once the batch is made."""
        import torch
        from torch.utils.data import get_worker_info

        saved = torch.get_rng_state() if get_worker_info() is None else None
        torch.manual_seed(seed)
        return saved

    def _pixels(self, sample: RawSample, position: Position) -> Any:
        try:
            sample.text.decode("utf-8")
            image = decode_image(sample.image, self.config.decode_side)
        except Exception as exc:  # noqa: BLE001 - PIL raises many types for damaged files
            position.counters.corrupt_samples += 1
            log.warning("sample %r: undecodable (%s: %s); skipped", sample.key, type(exc).__name__, exc)
            return None
        return self.preprocess(image)

    def _batch(
        self, pending: list[tuple[RawSample, Any]], logical: int, position: Position, scanned: Counters
    ) -> dict[str, Any]:
        import torch

        state = Position(position.epoch, position.offset, _add(position.counters, scanned))
        return {
            "images": torch.stack([pixels for _, pixels in pending]),
            "texts": self.tokenizer([sample.text.decode("utf-8") for sample, _ in pending]),
            "keys": [sample.key for sample, _ in pending],
            "worker": logical,
            "position": state.to_dict(),
        }


def _delta(now: Counters, then: Counters) -> Counters:
    return Counters(now.corrupt_samples - then.corrupt_samples, now.corrupt_shards - then.corrupt_shards)


def _add(a: Counters, b: Counters) -> Counters:
    return Counters(a.corrupt_samples + b.corrupt_samples, a.corrupt_shards + b.corrupt_shards)


def _count(start: int) -> Iterator[int]:
    while True:
        yield start
        start += 1


def _mix(*numbers: int) -> int:
    value = 0
    for n in numbers:
        value = (value * 1_000_003 + n) % (2**62)
    return value
