"""Real img2dataset 1.47.0 output imported, then scored, deduplicated and built into shards.

img2dataset runs from its own venv (testkit/img2dataset.py, cached in pytest's cache folder)
against the loopback world server, once per output format; each output is imported with real
Spark and checked row by row against what img2dataset wrote. The webdataset import then goes
through score, dedup and build_shards.
"""

from __future__ import annotations

import io
import json
import tarfile
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from pipeline.executor import SparkExecutor
from pipeline.image.decode import decode_rgb, open_checked
from pipeline.image.options import ImageOptions, ResizeMode
from pipeline.image.phash import from_signed64, phash
from pipeline.image.process import stored_image
from pipeline.imports.job import ImportStage
from pipeline.ingest import IngestOptions, iter_canonical_batches
from pipeline.synthetic.server import WorldServer
from testkit.img2dataset import installed_img2dataset, run_img2dataset
from tests.stages import build, build_options, dedup, dedup_options, score, score_options

pytestmark = pytest.mark.slow


CLEAN = 26  # world images fetched as they are
SHARD = 16  # img2dataset's --number_sample_per_shard
# Fault URLs (pipeline/synthetic/server.py) and the class each must be imported as; all answer
# at once (no slow fault), and none leaves loopback.
FAULTS = {
    "404": ("http_error", 404),
    "500": ("http_error", 500),
    "corrupt": ("undecodable", None),
    "truncated": ("truncated", None),
    "optout": ("opted_out", None),
    "reset": ("connection_reset", None),
    "redirect_loop": ("too_many_redirects", 302),
    "redirect": (None, None),  # one redirect: a success
}
FORMATS = ("webdataset", "parquet", "files")


@pytest.fixture(scope="module")
def img2dataset_exe() -> Path:
    """img2dataset's executable in ``.venv-img2dataset`` (made by ``make venv-img2dataset``)."""
    try:
        return installed_img2dataset()
    except FileNotFoundError as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="module")
def url_list(world: Path, server: WorldServer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Clean world images (the planted benchmark copies among them), each fault once, a row
    repeated (same URL and caption) and a row without URL, in LAION's columns."""
    table = pq.read_table(world / "world.parquet").to_pylist()
    planted = [r for r in table if r["planted_benchmark"] is not None]
    others = [r for r in table if r["planted_benchmark"] is None]
    chosen = planted + others[: CLEAN - len(planted)]
    rows = [
        {"URL": f"{server.base_url}/{r['file']}", "TEXT": r["caption"], "label": r["label"]} for r in chosen
    ]
    spare = iter(others[CLEAN - len(planted) :])
    for fault in FAULTS:
        r = next(spare)
        rows.append(
            {
                "URL": f"{server.base_url}/fault/{fault}/{r['file']}",
                "TEXT": r["caption"],
                "label": f"fault:{fault}",
            }
        )
    rows.insert(20, dict(rows[3]))  # a repeated pair, in the second img2dataset shard
    rows.append({"URL": None, "TEXT": "a row without URL", "label": "no url"})
    folder = tmp_path_factory.mktemp("i2d-list")
    pq.write_table(pa.Table.from_pylist(rows), folder / "urls.parquet")
    return folder / "urls.parquet"


@pytest.fixture(scope="module")
def outputs(
    img2dataset_exe: Path, url_list: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """img2dataset's output folder for each format (the same list, the same settings)."""
    root = tmp_path_factory.mktemp("i2d-out")
    runs = {
        fmt: [
            f"--url_list={url_list}",
            "--input_format=parquet",
            "--url_col=URL",
            "--caption_col=TEXT",
            "--save_additional_columns=['label']",
            f"--output_format={fmt}",
            f"--output_folder={root / fmt}",
            "--processes_count=1",
            "--thread_count=8",
            f"--number_sample_per_shard={SHARD}",
            "--image_size=256",
            "--resize_mode=border",
            "--timeout=10",
            "--retries=0",
            "--enable_wandb=False",
            "--distributor=multiprocessing",
        ]  # fmt: skip
        for fmt in FORMATS
    }
    run_img2dataset(img2dataset_exe, runs, root / "logs")  # the three at once
    return {fmt: root / fmt for fmt in FORMATS}


@pytest.fixture(scope="module")
def imported(
    spark: Any, outputs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("imported")
    stage = ImportStage()
    made = {}
    for fmt, source in outputs.items():
        options = stage.parse(["--source", str(source), "--dataset", str(root / fmt)])
        stage.check_inputs(options)
        summary = stage.run(SparkExecutor(spark), options)
        assert summary["shards"] == 3 and summary["imported_from"]["layouts"] == [fmt]
        made[fmt] = root / fmt
    return made


def _img2dataset_rows(folder: Path) -> list[dict[str, Any]]:
    return [r for p in sorted(folder.glob("[0-9]*.parquet")) for r in pq.read_table(p).to_pylist()]


def _img2dataset_images(folder: Path, fmt: str) -> dict[str, bytes]:
    """key -> stored image bytes, as img2dataset wrote them."""
    if fmt == "parquet":
        return {r["key"]: r["jpg"] for r in _img2dataset_rows(folder) if r["jpg"] is not None}
    if fmt == "files":
        return {p.stem: p.read_bytes() for p in folder.glob("[0-9]*/*.jpg")}
    images = {}
    for tar_path in sorted(folder.glob("*.tar")):
        with tarfile.open(tar_path) as tar:
            for member in tar.getmembers():
                if member.name.endswith(".jpg"):
                    images[member.name.split(".")[0]] = tar.extractfile(member).read()
    return images


def _raw_rows(dataset: Path) -> list[dict[str, Any]]:
    return [r for p in sorted((dataset / "raw").glob("[0-9]*.parquet")) for r in pq.read_table(p).to_pylist()]


def _raw_images(dataset: Path) -> dict[str, bytes]:
    images = {}
    for tar_path in sorted((dataset / "raw").glob("*.tar")):
        with tarfile.open(tar_path) as tar:
            for member in tar.getmembers():
                if member.name.endswith(".jpg"):
                    images[member.name.split(".")[0]] = tar.extractfile(member).read()
    return images


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_img2dataset_row_is_imported_once_with_its_image(
    imported: dict[str, Path], outputs: dict[str, Path], url_list: Path, world: Path, fmt: str
) -> None:
    theirs = {int(r["key"]): r for r in _img2dataset_rows(outputs[fmt])}
    rows = _raw_rows(imported[fmt])
    assert sorted(r["row_index"] for r in rows) == sorted(theirs)  # each row once, keyed by img2dataset's key
    assert len(rows) == CLEAN + len(FAULTS) + 2
    # uids as the download gives them to the same list, so imported and downloaded samples match.
    canonical = [r for t in iter_canonical_batches(IngestOptions(urls=str(url_list))) for r in t.to_pylist()]
    uid_of = {(r["url"], r["caption"]): r["uid"] for r in canonical if r["url"]}
    images, stored = _img2dataset_images(outputs[fmt], fmt), _raw_images(imported[fmt])
    classes: Counter[str] = Counter()
    for row in rows:
        source = theirs[row["row_index"]]
        extra = json.loads(row["extra"])
        assert extra["img2dataset_key"] == source["key"] and extra["label"] == source["label"]
        if row["url"] is not None:
            assert row["uid"] == uid_of[(row["url"], row["caption"])]
        label = source["label"]
        if row["status"] == "success":
            assert stored[row["uid"]] == images[source["key"]]  # img2dataset's bytes, not re-encoded
            assert row["sha256"] == source["sha256"]  # of the downloaded bytes, as img2dataset hashed them
            assert (row["width"], row["height"]) == (source["width"], source["height"]) == (256, 256)
            # The pHash dedup compares: close to the world image prepared as dedup prepares benchmarks.
            if not label.startswith("fault:"):
                original = next(world.glob(f"images/{row['url'].rsplit('/', 1)[-1]}")).read_bytes()
                expected = phash(stored_image(original, ImageOptions())[0])
                assert bin(from_signed64(row["phash"]) ^ expected).count("1") <= 6
        else:
            classes[row["error_class"]] += 1
            if label.startswith("fault:"):
                assert (row["error_class"], row["http_status"]) == FAULTS[label.split(":", 1)[1]]
    assert classes == Counter(
        {"duplicate_pair": 1, "missing_url": 1, **Counter(c for c, _ in FAULTS.values() if c)}
    )
    successes = {
        f"{p.stem}.tar": sum(r["status"] == "success" for r in pq.read_table(p).to_pylist())
        for p in sorted((imported[fmt] / "raw").glob("[0-9]*.parquet"))
    }
    assert json.loads((imported[fmt] / "raw" / "sizes.json").read_text()) == successes
    assert list(successes) == ["00000.tar", "00001.tar", "00002.tar"]


def test_a_second_import_resumes_and_a_download_dataset_is_refused(
    spark: Any, imported: dict[str, Path], outputs: dict[str, Path]
) -> None:
    stage = ImportStage()
    options = stage.parse(["--source", str(outputs["parquet"]), "--dataset", str(imported["parquet"])])
    assert stage.run(SparkExecutor(spark), options)["shards_resumed"] == 3
    other = stage.parse(["--source", str(outputs["files"]), "--dataset", str(imported["parquet"])])
    with pytest.raises(Exception, match="imported with other imported_from"):
        stage.run(SparkExecutor(spark), other)


def test_score_dedup_and_build_shards_run_on_the_import(
    spark: Any, imported: dict[str, Path], world: Path, random_checkpoint: Path
) -> None:
    dataset = imported["webdataset"]
    rows = [r for r in _raw_rows(dataset) if r["status"] == "success"]
    scored = score(
        spark,
        score_options(
            ["--dataset", str(dataset), "--model", "corpusforge-tiny", "--pretrained", str(random_checkpoint)]
        ),
    )
    assert scored["scored"] == len(rows)
    found = dedup(
        spark,
        dedup_options(
            ["--dataset", str(dataset), "--benchmark", str(world / "benchmark")]
            + ["--max-distance", "8", "--centre-max-distance", "4"]
        ),
    )
    planted = {r["uid"] for r in rows if _is_planted(world, r["url"])}
    matches = pq.read_table(dataset / "dedup" / "matches.parquet").to_pylist()
    assert {m["uid"] for m in matches if m["reason"] == "benchmark_duplicate"} == planted != set()
    assert found["shards"] == 3
    summary = build(
        spark, build_options(["--dataset", str(dataset), "--require-dedup", "--samples-per-shard", "8"])
    )
    assert summary["samples"] == len(rows) and summary["dropped"].get("benchmark_duplicate") == len(planted)
    final = {}
    for tar_path in sorted((dataset / "final").glob("*.tar")):
        with tarfile.open(tar_path) as tar:
            for member in tar.getmembers():
                if member.name.endswith(".jpg"):
                    final[member.name.split(".")[0]] = tar.extractfile(member).read()
    assert len(final) == summary["kept"] and not planted & set(final)
    stored = _raw_images(dataset)
    assert all(final[uid] == stored[uid] for uid in final)  # img2dataset's bytes end up in the shards
    Image.open(io.BytesIO(next(iter(final.values())))).verify()


def _is_planted(world: Path, url: str) -> bool:
    name = url.rsplit("/", 1)[-1]
    table = pq.read_table(world / "world.parquet", columns=["file", "planted_benchmark"]).to_pylist()
    return any(r["file"].endswith(name) and r["planted_benchmark"] is not None for r in table)


def test_stored_images_decode_as_the_import_hashed_them(imported: dict[str, Path]) -> None:
    as_stored = ImageOptions(resize_mode=ResizeMode.NO)
    rows = {r["uid"]: r for r in _raw_rows(imported["files"]) if r["status"] == "success"}
    for uid, data in _raw_images(imported["files"]).items():
        image, _ = decode_rgb(open_checked(data, as_stored), as_stored)
        assert from_signed64(rows[uid]["phash"]) == phash(image)
