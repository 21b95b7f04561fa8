"""Centre hashes: what they look at, that a caption band leaves them alone, and their cache."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

import pipeline.dedup.features as features
from pipeline.dataset import Dataset
from pipeline.dedup.benchmark_hashes import hash_image
from pipeline.dedup.centre import centre_phash, centre_region
from pipeline.dedup.features import FeatureCache, sample_features
from pipeline.dedup.verify import thumbnail_distance
from pipeline.image import ImageOptions, process_image
from pipeline.image.phash import from_signed64, phash
from pipeline.shards.raw_writer import SampleRecord
from testkit.raw_shards import write_raw_shard
from testkit.transforms import TRANSFORMS, bundled_photos, letterbox
from tests.shards.test_raw_writer import row


def jpeg(image: Image.Image, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def bits(a: int, b: int) -> int:
    return bin(a ^ b).count("1")


def test_region_is_the_middle_of_the_picture_not_of_the_padding() -> None:
    picture = Image.new("RGB", (200, 100), (10, 120, 30))
    padded = Image.new("RGB", (200, 200), (255, 255, 255))
    padded.paste(picture, (0, 50))
    region = centre_region(padded)
    assert region.size == (120, 60)  # 60% of each side of the 200x100 picture
    assert np.asarray(region).reshape(-1, 3).tolist()[0] == [10, 120, 30]


@pytest.mark.parametrize("name", ["astronaut", "chelsea", "coffee"])
def test_a_caption_band_moves_the_whole_hash_but_not_the_centre_hash(name: str) -> None:
    options = ImageOptions()
    photo = bundled_photos()[name]
    bench = hash_image(jpeg(photo), options)
    stored = process_image(jpeg(TRANSFORMS["text_overlay"](photo)), options)
    with Image.open(io.BytesIO(stored.data)) as decoded:
        copy_centre = centre_phash(decoded.convert("RGB"))
    assert bits(copy_centre, from_signed64(bench["phash_centre"])) <= 6
    assert bits(stored.phash, from_signed64(bench["phash"])) > bits(
        copy_centre, from_signed64(bench["phash_centre"])
    )


def _raw_shard(root: Path, images: list[Image.Image]) -> Dataset:
    dataset = Dataset(str(root))
    records = [
        SampleRecord(row(f"{i:032x}", i), process_image(jpeg(image), ImageOptions()).data)
        for i, image in enumerate(images)
    ]
    write_raw_shard(dataset, 0, records)
    return dataset


def test_corpus_features_are_cached_per_raw_shard(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    photos = bundled_photos()
    dataset = _raw_shard(tmp_path, [photos["astronaut"], photos["rocket"]])
    cache = FeatureCache(ImageOptions())
    uids, hashes = cache(dataset, 0)
    assert uids == [f"{0:032x}", f"{1:032x}"]
    cached = pq.read_table(tmp_path / "dedup" / "centre_hashes" / "00000.parquet")
    assert cached.column("phash_centre").to_pylist() == hashes.tolist()
    assert (tmp_path / "dedup" / "centre_hashes" / "00000_stats.json").exists()  # its marker
    # The same features the benchmark side gets from the same picture.
    rocket = hash_image(jpeg(photos["rocket"]), ImageOptions())
    row = cache.features(dataset, 0, {uids[1]})[uids[1]]
    assert set(row) == {
        "uid",
        "phash_centre",
        "complexity",
        "colour_signature",
        "thumbnail",
        "thumbnail_unbarred",
    }
    assert len(row["thumbnail"]) == len(rocket["thumbnail"]) == 32 * 32 * 3
    # The raw shard records no original size here, so the thumbnail covers the whole stored
    # image, padding and all; the padding is then found as bars, and inside them is the picture.
    assert rocket["thumbnail_unbarred"] is None
    assert thumbnail_distance(row["thumbnail"], rocket["thumbnail"]) > 0.1
    assert thumbnail_distance(row["thumbnail_unbarred"], rocket["thumbnail"]) <= 0.01
    assert bits(from_signed64(row["phash_centre"]), from_signed64(rocket["phash_centre"])) <= 4

    def unreachable(*args: object) -> None:
        raise AssertionError("the cached features should have been used")

    monkeypatch.setattr(features, "sample_features", unreachable)
    again_uids, again = cache(dataset, 0)
    assert again_uids == uids and again.tolist() == hashes.tolist()
    monkeypatch.undo()

    # A new download of the shard (other images) makes the cache stale: it is recomputed.
    _raw_shard(tmp_path, [photos["coffee"]])
    new_uids, new = cache(dataset, 0)
    assert new_uids == [f"{0:032x}"] and new.tolist() != hashes[:1].tolist()


def test_centre_hash_of_a_flat_picture_is_defined() -> None:
    flat = Image.new("RGB", (256, 256), (255, 255, 255))  # all border: the whole image is the content
    assert centre_phash(flat) == phash(centre_region(flat))


def test_a_letterboxed_copy_has_the_centre_hash_of_its_original() -> None:
    # The bars move the centre of the picture box; the features are of the picture inside them.
    options = ImageOptions()
    for name in ("astronaut", "chelsea", "coffee", "rocket"):
        photo = bundled_photos()[name]
        bench = hash_image(jpeg(photo), options)
        stored = process_image(jpeg(letterbox(photo)), options)
        copy = sample_features(stored.data, (stored.original_width, stored.original_height), options)
        near = bits(from_signed64(copy["phash_centre"]), from_signed64(bench["phash_centre"]))
        with Image.open(io.BytesIO(stored.data)) as decoded:
            framed = centre_phash(decoded.convert("RGB"))  # the centre of the whole picture box
        assert near <= 4 < bits(framed, from_signed64(bench["phash_centre"])), name
        assert abs(copy["complexity"] - bench["complexity"]) < 3, name
