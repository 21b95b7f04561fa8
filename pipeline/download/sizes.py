"""``raw/sizes.json``: the sample count of every complete raw tar, as WebDataset loaders read it.

``{"00000.tar": 9412, ...}``, the same file build_shards writes for the final shards, so the raw
tars can be read by any WebDataset loader (``corpusforge train`` included) with their sizes known.
Written by the download job and the import at the end of every run, from the shards' markers.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from pipeline.dataset import Dataset


def write_raw_sizes(dataset: Dataset) -> dict[str, int]:
    """Write (and return) ``raw/sizes.json`` for the raw shards complete now, in shard order
    (unless it already says exactly that)."""
    shards = dataset.raw.complete_shards()
    with ThreadPoolExecutor(max_workers=16) as pool:  # object stores: one request per marker
        markers = list(pool.map(lambda shard: shard.stats(), shards))
    sizes = {
        f"{shard.name}.tar": int(marker["successes"]) for shard, marker in zip(shards, markers, strict=True)
    }
    if dataset.storage.read_json_if_exists(*dataset.raw.sizes_file) != sizes:  # a resume rewrites nothing
        dataset.storage.write_json(sizes, *dataset.raw.sizes_file)
    return sizes
