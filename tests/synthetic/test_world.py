"""The synthetic world: images, captions, labels, mismatches and planted duplicates."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
from PIL import Image

from pipeline.image import ImageOptions, process_image
from pipeline.ingest import IngestOptions, iter_canonical_batches
from pipeline.synthetic.scenes import all_labels
from pipeline.synthetic.world import FAULTS, WorldSpec, generate_world, write_url_lists


def test_world_contents(tmp_path: Path) -> None:
    world = generate_world(
        tmp_path / "w",
        WorldSpec(images=60, seed=3, mismatch_fraction=0.25, benchmark_images=6, planted_duplicates=5),
    )
    rows = pq.read_table(world / "world.parquet").to_pylist()
    assert len(rows) == 60 and len(list((world / "benchmark").glob("*.jpg"))) == 6
    assert all(r["label"] in all_labels() for r in rows)
    mismatched = [r for r in rows if not r["matched"]]
    assert 5 <= len(mismatched) <= 25
    assert all(r["caption"] != r["true_caption"] for r in mismatched)
    assert all(
        r["label"] in r["caption"].replace("s at", " at") or r["label"].split()[0] in r["caption"]
        for r in rows
        if r["matched"]
    )
    planted = [r for r in rows if r["planted_benchmark"] is not None]
    assert len(planted) == 5
    # A planted copy is a near-duplicate of its benchmark image by pHash.
    options = ImageOptions()
    for row in planted:
        corpus = process_image((world / row["file"]).read_bytes(), options).phash
        bench_file = world / "benchmark" / f"{row['planted_benchmark']:06d}.jpg"
        bench = process_image(bench_file.read_bytes(), options).phash
        assert bin(corpus ^ bench).count("1") <= 12
    with Image.open(world / rows[0]["file"]) as image:
        assert (image.width, image.height) == (rows[0]["width"], rows[0]["height"])


def test_url_lists_in_both_layouts_read_the_same(tmp_path: Path) -> None:
    world = generate_world(
        tmp_path / "w", WorldSpec(images=40, seed=4, benchmark_images=2, planted_duplicates=1)
    )
    lists = write_url_lists(world, "http://127.0.0.1:9", faults_per_kind=1, bad_rows=True)
    table = pq.read_table(lists["parquet"])
    assert set(table.column_names) >= {"URL", "TEXT", "WIDTH", "HEIGHT"}
    faults = [f for f in table.column("fault").to_pylist() if f and not f.startswith("bad:")]
    assert sorted(faults) == sorted(FAULTS)

    def pairs(path: Path) -> list[tuple]:
        batches = iter_canonical_batches(IngestOptions(urls=str(path)))
        return [(r["uid"], r["ingest_error"]) for b in batches for r in b.to_pylist()]

    from_parquet = pairs(lists["parquet"])
    assert from_parquet == pairs(lists["tsv"])[: len(from_parquet)] or len(from_parquet) == len(
        pairs(lists["tsv"])
    )
