"""The dedup job end to end on downloaded synthetic worlds (real Spark, real HTTP server)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from pipeline.dataset import DEDUP_DIR
from pipeline.dedup.verify import DEFAULT_MAX_THUMBNAIL_DISTANCE
from pipeline.errors import UserInputError
from pipeline.image.phash import from_signed64
from pipeline.synthetic.server import WorldServer
from schemas.contract import check_schema
from schemas.dedup import BENCHMARK_HASHES_SCHEMA, MATCHES_SCHEMA
from testkit.transforms import TRANSFORMS, bundled_photos, letterbox
from tests.stages import check_inputs as check_stage_inputs
from tests.stages import dedup as run
from tests.stages import dedup_options as options_from_args
from tests.stages import download as download

HASHES_FILE = "benchmark_hashes.parquet"


@pytest.fixture
def dataset(downloaded: Path, tmp_path: Path) -> Path:
    """A private copy of the downloaded world (dedup writes into the dataset)."""
    copy = tmp_path / "dataset"
    shutil.copytree(downloaded / "raw", copy / "raw")
    return copy


def _matches(dataset: Path) -> list[dict]:
    table = pq.read_table(dataset / DEDUP_DIR / "matches.parquet")
    check_schema(table.schema, MATCHES_SCHEMA, "matches.parquet")
    return table.to_pylist()


def _raw_rows(dataset: Path) -> list[dict]:
    return [r for f in sorted((dataset / "raw").glob("*.parquet")) for r in pq.read_table(f).to_pylist()]


def _uid_of_file(dataset: Path) -> dict[str, str]:
    """World image file (images/NNNNNN.jpg) -> uid of its stored sample."""
    table = _raw_rows(dataset)
    return {r["url"].split("/", 3)[-1]: r["uid"] for r in table if r["status"] == "success"}


def test_planted_benchmark_copies_are_found_and_nothing_else(spark, world: Path, dataset: Path) -> None:
    # At the defaults the hashes also reach unrelated scenes of this small world (its scenes share
    # few layouts: one sits at 10 bits from a benchmark image, another at 6 bits from a benchmark
    # image's centre); the verifier must reject them and keep every planted copy.
    options = ["--dataset", str(dataset), "--benchmark", str(world / "benchmark")]
    summary = run(spark, options_from_args(options))
    planted = {
        r["file"]: r["planted_benchmark"]
        for r in pq.read_table(world / "world.parquet").to_pylist()
        if r["planted_benchmark"] is not None
    }
    uid_of = _uid_of_file(dataset)
    expected = {uid_of[f]: f"benchmark/{b:06d}.jpg" for f, b in planted.items() if f in uid_of}
    assert expected, "the fixture world should plant copies that download"
    rows = [m for m in _matches(dataset) if m["reason"] == "benchmark_duplicate"]
    assert {m["uid"]: m["match_id"] for m in rows} == expected
    assert summary["by_reason"]["benchmark_duplicate"] == len(expected)
    assert summary["benchmark"]["execution"] == "broadcast"
    assert summary["benchmark_samples_rejected"] >= 1  # the hashes found more than the copies
    # Every dropped sample says which signals agreed, and the thumbnails are one of them.
    for m in rows:
        assert m["verified"] is True and "thumbnail" in m["signals"], m
        assert m["thumbnail_distance"] <= DEFAULT_MAX_THUMBNAIL_DISTANCE
        assert m["phash_distance"] is not None and m["centre_distance"] is not None
        assert set(m["signals"]) & {"phash", "phash_centre"}
    hashes = pq.read_table(dataset / DEDUP_DIR / HASHES_FILE)
    check_schema(hashes.schema, BENCHMARK_HASHES_SCHEMA, HASHES_FILE)
    assert hashes.num_rows == len(list((world / "benchmark").glob("*.jpg")))
    # The audit grid: an HTML page whose every image exists and opens.
    index = dataset / DEDUP_DIR / "audit" / "index.html"
    page = index.read_text()
    pngs = sorted((dataset / DEDUP_DIR / "audit").glob("page_*.png"))
    assert pngs and all(f'src="{p.name}"' in page for p in pngs)
    for png in pngs:
        with Image.open(png) as image:
            assert image.width >= 128 and image.height >= 128
    for uid in expected:
        assert uid in page
    # ... and the candidates the verifier rejected, in their own section, with their signals.
    rejected = sorted((dataset / DEDUP_DIR / "audit").glob("rejected_*.png"))
    assert rejected and all(f'src="{p.name}"' in page for p in rejected)
    assert "Rejected by the verifier" in page and "<th>thumbnail differs</th>" in page
    assert page.count("<td>rejected</td>") >= summary["benchmark_samples_rejected"] >= 1


def _both_executions(spark, dataset: Path, world: Path, max_distance: int, centre: int) -> set[tuple]:
    """Run the benchmark search broadcast, then as a shuffle join; assert they agree; return the matches."""
    common = ["--dataset", str(dataset), "--benchmark", str(world / "benchmark")]
    common += ["--max-distance", str(max_distance), "--centre-max-distance", str(centre)]
    common += [
        "--no-within-corpus",
        "--min-complexity",
        "0",
        "--max-thumbnail-distance",
        "-1",
        "--audit-limit",
        "0",
    ]
    results = []
    for extra, execution in (([], "broadcast"), (["--broadcast-limit-mb", "0"], "shuffle_join")):
        summary = run(spark, options_from_args([*common, *extra]))
        assert summary["benchmark"]["execution"] == execution
        if centre >= 0:
            assert summary["benchmark"]["centre_execution"] == execution
        results.append(
            {(m["uid"], m["match_id"], m["distance"], m["matched_hash"]) for m in _matches(dataset)}
        )
    assert summary["benchmark"]["reused"] is True  # the second run reuses the benchmark hashes
    assert results[0] == results[1]
    return results[0]


def _brute_force(corpus: list[dict], bench: list[dict], column: str, limit: int) -> set[tuple]:
    """(uid, closest benchmark id, distance, column) of every corpus row within ``limit`` bits."""
    found = set()
    for r in corpus:
        distance, bid = min(
            (bin(from_signed64(r[column]) ^ from_signed64(b[column])).count("1"), b["benchmark_id"])
            for b in bench
        )
        if distance <= limit:
            found.add((r["uid"], bid, distance, column))
    return found


def test_shuffle_join_and_broadcast_agree_with_brute_force(spark, world: Path, dataset: Path) -> None:
    """At a large distance (many matches) both executions return exactly the brute-force pairs."""
    matches = _both_executions(spark, dataset, world, max_distance=22, centre=-1)
    raw = [r for r in _raw_rows(dataset) if r["status"] == "success"]
    bench = pq.read_table(dataset / DEDUP_DIR / HASHES_FILE).to_pylist()
    assert matches == _brute_force(raw, bench, "phash", 22)
    assert len(matches) > 10  # the distance is large enough to exercise many pairs


def test_centre_hash_search_agrees_across_executions_and_with_brute_force(
    spark, world: Path, dataset: Path
) -> None:
    """Centre hashes only (no corpus image is at whole-picture distance 0 here)."""
    matches = _both_executions(spark, dataset, world, max_distance=0, centre=20)
    centre_files = sorted((dataset / DEDUP_DIR / "centre_hashes").glob("*.parquet"))
    assert len(centre_files) == len(list((dataset / "raw").glob("*_stats.json")))
    corpus = [r for f in centre_files for r in pq.read_table(f).to_pylist()]
    bench = pq.read_table(dataset / DEDUP_DIR / HASHES_FILE).to_pylist()
    assert matches == _brute_force(corpus, bench, "phash_centre", 20)
    assert len(matches) > 10


def _serve_list(tmp: Path, files: dict[str, Image.Image], rows: list[tuple[str, str]]) -> Path:
    site = tmp / "site"
    site.mkdir()
    for name, image in files.items():
        image.save(site / name, quality=92)
    return site


def _download_list(spark, site: Path, rows: list[tuple[str, str]], dataset: Path, base_url: str) -> None:
    urls = dataset.parent / "urls.parquet"
    pq.write_table(
        pa.Table.from_pylist([{"URL": f"{base_url}/{name}", "TEXT": text} for name, text in rows]), urls
    )
    from tests.stages import download_options as download_args

    download(
        spark,
        download_args(
            [
                "--urls",
                str(urls),
                "--dataset",
                str(dataset),
                "--allow-network",
                "127.0.0.1/32",
                "--samples-per-shard",
                "4",
            ]
        ),
    )


def _photo(seed: int, size: tuple[int, int] = (320, 240)) -> Image.Image:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    return Image.fromarray(small).resize(size, Image.Resampling.BICUBIC)


def _flat(colour: tuple[int, int, int]) -> Image.Image:
    """A near-uniform picture: one colour with a faint vertical gradient (+-3 levels)."""
    ramp = np.linspace(-3, 3, 240)[:, None, None]
    pixels = np.clip(np.array(colour)[None, None, :] + ramp + np.zeros((240, 320, 3)), 0, 255)
    return Image.fromarray(pixels.astype(np.uint8))


def test_within_corpus_exact_and_near_duplicates_keep_one_per_group(spark, tmp_path: Path) -> None:
    big = _photo(1, (400, 300))
    files = {
        "a.jpg": big,
        "a_small.jpg": big.resize((200, 150), Image.Resampling.LANCZOS),  # near-duplicate of a.jpg
        "b.jpg": _photo(2),
        "c.jpg": _photo(3),
        "c_padded.jpg": letterbox(_photo(3), 0.3, (255, 255, 255)),  # c.jpg on a white canvas
        "red.jpg": _flat((200, 40, 40)),
        "blue.jpg": _flat((40, 40, 200)),
    }
    site = _serve_list(tmp_path, files, [])
    rows = [(name, f"caption of {name}") for name in files] + [("b.jpg", "the same picture again")]
    dataset = tmp_path / "dataset"
    with WorldServer(site) as server:
        _download_list(spark, site, rows, dataset, server.base_url)
    uid_of = {}
    for r in _raw_rows(dataset):
        assert r["status"] == "success", r
        uid_of.setdefault(r["url"].rsplit("/", 1)[-1], []).append(r["uid"])

    summary = run(spark, options_from_args(["--dataset", str(dataset)]))
    matches = {m["uid"]: m for m in _matches(dataset)}
    # Exact: the two rows of b.jpg share their bytes; the smaller uid is kept.
    b_keep, b_drop = sorted(uid_of["b.jpg"])
    assert matches[b_drop]["reason"] == "exact_duplicate" and matches[b_drop]["match_id"] == b_keep
    assert b_keep not in matches
    # Near: the half-size copy goes, the larger original stays.
    (a,), (a_small,) = uid_of["a.jpg"], uid_of["a_small.jpg"]
    assert matches[a_small]["reason"] == "near_duplicate" and matches[a_small]["match_id"] == a
    assert a not in matches
    # Padded: the same hash, and the same picture inside the white bars (the larger file is kept).
    (c,), (c_padded,) = uid_of["c.jpg"], uid_of["c_padded.jpg"]
    assert matches[c]["reason"] == "near_duplicate" and matches[c]["match_id"] == c_padded
    assert matches[c]["verified"] is True and c_padded not in matches
    # Two flat images of different colours hash alike, but the low-complexity rule keeps both.
    assert not {uid_of["red.jpg"][0], uid_of["blue.jpg"][0]} & set(matches)
    assert summary["by_reason"] == {
        "benchmark_duplicate": 0,
        "exact_duplicate": 1,
        "near_duplicate": 2,
        "semantic_duplicate": 0,
    }
    near = matches[a_small]
    assert near["verified"] is True and near["signals"] == ["phash", "thumbnail"]
    assert matches[b_drop]["signals"] == ["sha256"] and matches[b_drop]["verified"] is None
    # Without the checks (no low-complexity rule, no thumbnails) the flat pair is merged.
    unchecked = ["--min-complexity", "0", "--max-thumbnail-distance", "-1", "--near-duplicate-distance", "16"]
    run(spark, options_from_args(["--dataset", str(dataset), *unchecked]))
    flat = {uid_of["red.jpg"][0], uid_of["blue.jpg"][0]}
    assert len(flat & {m["uid"] for m in _matches(dataset)}) == 1


def test_a_copy_under_a_caption_band_is_found_by_its_centre(spark, tmp_path: Path) -> None:
    photo = bundled_photos()["astronaut"]
    bench_dir = tmp_path / "bench"
    bench_dir.mkdir()
    photo.save(bench_dir / "astronaut.jpg", quality=92)
    files = {"copy.jpg": TRANSFORMS["text_overlay"](photo), "other.jpg": _photo(5), "another.jpg": _photo(6)}
    site = _serve_list(tmp_path, files, [])
    dataset = tmp_path / "dataset"
    with WorldServer(site) as server:
        _download_list(spark, site, [(n, f"caption of {n}") for n in files], dataset, server.base_url)
    copy_uid = next(r["uid"] for r in _raw_rows(dataset) if r["url"].endswith("/copy.jpg"))
    # The band moves the whole-picture hash 6 bits: matching at 4 bits alone misses the copy ...
    base = [
        "--dataset",
        str(dataset),
        "--benchmark",
        str(bench_dir),
        "--no-within-corpus",
        "--max-distance",
        "4",
    ]
    summary = run(spark, options_from_args([*base, "--centre-max-distance", "-1"]))
    assert summary["by_reason"]["benchmark_duplicate"] == 0
    # ... the centre hashes find it, and the outputs say which hash did.
    summary = run(spark, options_from_args(base))
    found = [(m["uid"], m["match_id"], m["matched_hash"]) for m in _matches(dataset)]
    assert found == [(copy_uid, "bench/astronaut.jpg", "phash_centre")]
    assert summary["benchmark_matches_by_hash"] == {"phash_centre": 1}
    assert "<td>centre</td>" in (dataset / DEDUP_DIR / "audit" / "index.html").read_text()


def test_benchmark_sources_folder_tar_and_precomputed_hashes(
    spark, world: Path, dataset: Path, tmp_path: Path
) -> None:
    import tarfile

    bench_files = sorted((world / "benchmark").glob("*.jpg"))
    tar_path = tmp_path / "bench.tar"
    with tarfile.open(tar_path, "w") as tar:
        for f in bench_files:
            tar.add(f, arcname=f"{f.stem}.jpg")
            caption = tmp_path / f"{f.stem}.txt"
            caption.write_text("x")
            tar.add(caption, arcname=f"{f.stem}.txt")
    # Whole-picture hashes only: imagehash-style published hashes have no centre hash.
    base = [
        "--dataset",
        str(dataset),
        "--no-within-corpus",
        "--audit-limit",
        "0",
        "--centre-max-distance",
        "-1",
    ]
    run(spark, options_from_args([*base, "--benchmark", str(world / "benchmark")]))
    from_folder = {(m["uid"], m["match_id"].split("/", 1)[1].split(".")[0]) for m in _matches(dataset)}
    run(spark, options_from_args([*base, "--benchmark", str(tar_path)]))
    from_tar = {(m["uid"], m["match_id"].split("/", 1)[1]) for m in _matches(dataset)}
    assert from_tar == from_folder and from_tar

    # Precomputed hashes as 16 hex digits (imagehash's str()) give the same matches.
    saved = pq.read_table(dataset / DEDUP_DIR / HASHES_FILE).to_pylist()
    hexes = tmp_path / "published.parquet"
    pq.write_table(
        pa.Table.from_pylist(
            [{"benchmark_id": r["member"], "phash": f"{from_signed64(r['phash']):016x}"} for r in saved]
        ),
        hexes,
    )
    run(spark, options_from_args([*base, "--benchmark", str(hexes)]))
    hex_rows = _matches(dataset)
    from_hex = {(m["uid"], m["match_id"]) for m in hex_rows}
    # They find every copy the images find; without thumbnails nothing verifies what the hashes
    # say (an unrelated scene of this world at 10 bits is kept in), and the rows say so.
    assert from_tar <= from_hex
    assert all(m["verified"] is None and m["signals"] == ["phash"] for m in hex_rows)

    # With the thumbnail column (another dataset's benchmark_hashes.parquet), they verify again.
    with_thumbnails = tmp_path / "published_thumbnails.parquet"
    pq.write_table(
        pa.Table.from_pylist([{**r, "benchmark_id": r["member"]} for r in saved]),
        with_thumbnails,
    )
    run(spark, options_from_args([*base, "--benchmark", str(with_thumbnails)]))
    assert {(m["uid"], m["match_id"]) for m in _matches(dataset)} == from_tar

    # With a phash_centre column, precomputed hashes match like the images they came from.
    with_centre = tmp_path / "published_centre.parquet"
    pq.write_table(
        pa.Table.from_pylist(
            [
                {
                    "benchmark_id": r["member"],
                    "phash": r["phash"],
                    "phash_centre": f"{from_signed64(r['phash_centre']):016x}",
                    "thumbnail": r["thumbnail"],
                }
                for r in saved
            ]
        ),
        with_centre,
    )
    centre_on = ["--dataset", str(dataset), "--no-within-corpus", "--audit-limit", "0", "--max-distance", "4"]
    run(spark, options_from_args([*centre_on, "--benchmark", str(world / "benchmark")]))
    from_images = {
        (m["uid"], m["match_id"].split("/", 1)[1].split(".")[0], m["matched_hash"]) for m in _matches(dataset)
    }
    run(spark, options_from_args([*centre_on, "--benchmark", str(with_centre)]))
    from_table = {(m["uid"], m["match_id"], m["matched_hash"]) for m in _matches(dataset)}
    assert from_table == from_images and from_images


def test_bad_benchmark_inputs_are_refused_with_the_file_and_reason(
    spark, world: Path, dataset: Path, tmp_path: Path
) -> None:
    with pytest.raises(UserInputError, match="no such file"):
        check_stage_inputs(
            "dedup", options_from_args(["--dataset", str(dataset), "--benchmark", str(tmp_path / "missing")])
        )
    folder = tmp_path / "bench"
    shutil.copytree(world / "benchmark", folder)
    (folder / "broken.jpg").write_bytes(b"not a jpeg at all")
    options = [
        "--dataset",
        str(dataset),
        "--benchmark",
        str(folder),
        "--no-within-corpus",
        "--audit-limit",
        "0",
    ]
    with pytest.raises(UserInputError, match=r"broken\.jpg: undecodable"):
        run(spark, options_from_args(options))
    summary = run(spark, options_from_args([*options, "--skip-bad-benchmark-images"]))
    assert len(summary["benchmark"]["skipped"]) == 1
    bad_hashes = tmp_path / "bad.parquet"
    pq.write_table(pa.Table.from_pylist([{"phash": "xyz"}]), bad_hashes)
    with pytest.raises(UserInputError, match=r"bad\.parquet: row 0: phash 'xyz' is not 16 hex digits"):
        run(spark, options_from_args(["--dataset", str(dataset), "--benchmark", str(bad_hashes)]))
    with pytest.raises(UserInputError, match="no complete raw shards"):
        check_stage_inputs(
            "dedup", options_from_args(["--dataset", str(tmp_path / "empty"), "--benchmark", str(folder)])
        )
