"""Layout candidates (``--layout-search``): copies of flat graphics whose pHash bits are noise.

The vectors are tested as functions; the search through a real Spark job on a real download of
drawn graphics, one of which the hashes cannot reach.
"""

from __future__ import annotations

import io
import random
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter

from pipeline.dedup.benchmark_hashes import hash_image
from pipeline.dedup.features import sample_features
from pipeline.dedup.job import format_summary
from pipeline.dedup.layout import QUERIES, WIDTH, benchmark_queries, drawn, sample_vectors
from pipeline.dedup.verify import as_array, mirrored
from pipeline.image.options import ImageOptions
from pipeline.image.phash import from_signed64
from pipeline.image.process import process_image
from pipeline.synthetic.server import WorldServer
from testkit.graphics import draw, random_graphic, recoloured
from testkit.transforms import TRANSFORMS, bundled_photos, letterbox
from tests.dedup.test_job import _download_list, _matches, _raw_rows, _serve_list
from tests.stages import dedup as run
from tests.stages import dedup_options as options_from_args


def _thumbnail(image: Image.Image) -> np.ndarray:
    """The verification thumbnail of ``image`` as a benchmark image (the job's own code path)."""
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "PNG")
    return as_array([hash_image(buffer.getvalue(), ImageOptions())["thumbnail"]])


def _similarity(a: np.ndarray, b: np.ndarray) -> float:
    return float(sample_vectors(a)[0] @ sample_vectors(b)[0] / 2)


def test_layout_ignores_brightness_and_contrast_and_flat_pictures_match_nothing() -> None:
    photo = _thumbnail(bundled_photos()["coffee"])
    brighter = np.clip(photo * 0.8 + 30, 0, 255)
    assert _similarity(photo, brighter) > 0.99
    flat = np.full_like(photo, 200.0)
    assert not sample_vectors(flat).any()
    other = _thumbnail(bundled_photos()["camera"])
    assert _similarity(photo, other) < 0.5


def test_queries_find_mirror_crop_and_an_overlay_at_the_edge() -> None:
    rng = random.Random(3)
    picture = draw(random_graphic(rng, "icon"))
    data = io.BytesIO()
    picture.save(data, "PNG")
    row = hash_image(data.getvalue(), ImageOptions())
    queries = benchmark_queries([row["thumbnail"]], [row["thumbnail_zoomed"]]).reshape(len(QUERIES), WIDTH)

    def best(copy: Image.Image) -> dict[str, float]:
        vector = sample_vectors(_thumbnail(copy))[0]
        return dict(zip(QUERIES, (queries @ vector).round(3).tolist(), strict=True))

    assert best(picture)["picture"] > 0.99
    assert best(picture.transpose(Image.Transpose.FLIP_LEFT_RIGHT))["mirror"] > 0.99
    assert best(TRANSFORMS["crop_15"](picture))["crop_15"] > 0.9
    # A dark caption band over the bottom: the centre still matches.
    banded = TRANSFORMS["text_overlay"](picture)
    assert best(banded)["centre"] > 0.95
    assert sample_vectors(mirrored(as_array([row["thumbnail"]]))).shape == (1, WIDTH)
    # A benchmark row without a thumbnail (precomputed hashes) matches nothing.
    assert not benchmark_queries([None], [None]).any()


def test_only_drawn_benchmark_pictures_are_searched() -> None:
    # Icons, logos and flags are searched; a photograph (its hashes work), a gradient and a
    # near-uniform picture (a ramp correlates with every other ramp) are not.
    def row(image: Image.Image) -> dict:
        data = io.BytesIO()
        image.convert("RGB").save(data, "PNG")
        return hash_image(data.getvalue(), ImageOptions())

    rng = random.Random(7)
    pictures = {
        "icon": draw(random_graphic(rng, "icon")),
        "flag": draw(random_graphic(rng, "flag")),
        "photo": bundled_photos()["coffee"],
        "gradient": draw(random_graphic(rng, "gradient")),
        "uniform": Image.new("RGB", (300, 200), (120, 130, 140)),
    }
    rows = [row(p) for p in pictures.values()]
    searched = drawn(as_array([r["thumbnail"] for r in rows]))
    assert dict(zip(pictures, searched.tolist(), strict=True)) == {
        "icon": True,
        "flag": True,
        "photo": False,
        "gradient": False,
        "uniform": False,
    }
    queries = benchmark_queries([r["thumbnail"] for r in rows], [r["thumbnail_zoomed"] for r in rows])
    assert queries.reshape(len(rows), -1).any(axis=1).tolist() == searched.tolist()


def _far_graphic(options: ImageOptions) -> tuple[Image.Image, Image.Image]:
    """A drawn graphic and a blurred copy of it whose pHash and centre hash are both beyond the
    default distances (10 and 6 bits): what the hashes cannot find."""
    rng = random.Random(0)
    for _ in range(400):
        picture = draw(random_graphic(rng))
        copy = picture.convert("RGB").filter(ImageFilter.GaussianBlur(2))
        served = io.BytesIO()
        picture.convert("RGB").save(served, "JPEG", quality=92)
        copied = io.BytesIO()
        copy.save(copied, "JPEG", quality=92)
        bench = hash_image(served.getvalue(), options)
        stored = process_image(copied.getvalue(), options)
        size = (stored.original_width, stored.original_height)
        centre = sample_features(stored.data, size, options)["phash_centre"]
        whole = bin(from_signed64(bench["phash"]) ^ stored.phash).count("1")
        middle = bin(from_signed64(bench["phash_centre"]) ^ from_signed64(centre)).count("1")
        if whole > 12 and middle > 8:
            return picture, copy
    raise AssertionError("no drawn graphic out of the hashes' reach")


@pytest.fixture(scope="module")
def graphics(spark, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    """A benchmark of one drawn graphic; a corpus with its blurred copy and a letterboxed copy
    (both out of the hashes' reach), the same layout in other colours, and photographs."""
    tmp = tmp_path_factory.mktemp("layout")
    picture, copy = _far_graphic(ImageOptions())
    bench = tmp / "benchmark"
    bench.mkdir()
    picture.save(bench / "logo.png")
    rng = random.Random(1)
    graphic = random_graphic(random.Random(5))
    photos = bundled_photos()
    files = {
        "copy.jpg": copy,
        "letterboxed.jpg": letterbox(picture),
        "recoloured.jpg": draw(recoloured(graphic, rng)),
        "coffee.jpg": photos["coffee"],
        "rocket.jpg": photos["rocket"],
    }
    site = _serve_list(tmp, files, [])
    dataset = tmp / "dataset"
    with WorldServer(site) as server:
        _download_list(
            spark, site, [(n, f"a picture of {n.split('.')[0]}") for n in files], dataset, server.base_url
        )
    uid_of = {r["url"].rsplit("/", 1)[-1]: r["uid"] for r in _raw_rows(dataset)}
    return dataset, bench, uid_of


def _dedup(spark, dataset: Path, bench: Path, *extra: str) -> dict:
    return run(spark, options_from_args(["--dataset", str(dataset), "--benchmark", str(bench), *extra]))


def test_a_graphic_copy_the_hashes_miss_is_found_by_its_layout(spark, graphics) -> None:
    dataset, bench, uid_of = graphics
    _dedup(spark, dataset, bench, "--no-layout-search")
    found = {m["uid"] for m in _matches(dataset)}
    assert not {uid_of["copy.jpg"], uid_of["letterboxed.jpg"]} & found, "the hashes should miss the copies"

    summary = _dedup(spark, dataset, bench)
    matches = {m["uid"]: m for m in _matches(dataset)}
    copy = matches[uid_of["copy.jpg"]]
    assert copy["reason"] == "benchmark_duplicate" and copy["match_id"] == "benchmark/logo.png"
    assert copy["matched_hash"] == "layout" and copy["verified"] is True
    assert copy["signals"][-2:] == ["layout", "thumbnail"] and copy["layout_similarity"] >= 0.9
    assert copy["embedding_similarity"] is None
    # The letterboxed copy: found by the layout of the picture inside its bars, and confirmed there.
    barred = matches[uid_of["letterboxed.jpg"]]
    assert barred["match_id"] == "benchmark/logo.png" and barred["matched_hash"] == "layout"
    assert barred["verified"] is True and barred["layout_similarity"] >= 0.95
    assert set(matches) == {uid_of["copy.jpg"], uid_of["letterboxed.jpg"]}
    layout = summary["benchmark"]["layout"]
    assert layout["benchmark_images_searched"] == 1 and layout["candidates_not_found_before"] >= 2
    assert "layout candidates" in format_summary(summary)
    assert summary["benchmark_matches_by_hash"] == {"layout": 2}
    page = (dataset / "dedup" / "audit" / "index.html").read_text()
    assert "layout similarity" in page and "<td>layout" in page


def test_every_layout_candidate_goes_through_the_thumbnails(spark, graphics) -> None:
    # At similarity 0.01 every sample whose layout correlates at all with the logo's is a candidate
    # (in both orientations); only the copy survives the verification.
    dataset, bench, uid_of = graphics
    summary = _dedup(spark, dataset, bench, "--layout-min-similarity", "0.01")
    assert {m["uid"] for m in _matches(dataset)} == {uid_of["copy.jpg"], uid_of["letterboxed.jpg"]}
    assert summary["benchmark"]["layout"]["candidates"] >= 2 * 2
    assert summary["benchmark_samples_rejected"] >= 1
