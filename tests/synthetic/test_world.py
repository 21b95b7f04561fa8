"""The synthetic world: images, captions, labels, mismatches and planted duplicates."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from PIL import Image

from pipeline.errors import UserInputError
from pipeline.image import ImageOptions, process_image
from pipeline.ingest import IngestOptions, iter_canonical_batches
from pipeline.synthetic.scenes import all_labels
from pipeline.synthetic.watermark import CAPTION_PHRASES, CAPTION_PHRASES_ZH
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


@pytest.mark.parametrize("language", ["en", "mixed"])
def test_watermark_captions_say_so_and_change_nothing_else(language: str, tmp_path: Path) -> None:
    spec = WorldSpec(
        images=30,
        seed=8,
        watermark_fraction=0.5,
        watermark_style="band",
        benchmark_images=0,
        planted_duplicates=0,
        min_side=48,
        max_side=64,
        language=language,
    )
    plain = generate_world(tmp_path / "plain", spec)
    said = generate_world(tmp_path / "said", replace(spec, watermark_caption_fraction=1.0))
    before = pq.read_table(plain / "world.parquet").to_pylist()
    after = pq.read_table(said / "world.parquet").to_pylist()
    assert (
        "watermark_caption_fraction"
        not in json.loads((plain / "world.json").read_text(encoding="utf-8"))["spec"]
    )
    assert (
        json.loads((said / "world.json").read_text(encoding="utf-8"))["spec"]["watermark_caption_fraction"]
        == 1.0
    )
    assert 5 <= sum(r["watermarked"] for r in after) <= 25
    for old, new in zip(before, after, strict=True):
        assert (said / new["file"]).read_bytes() == (plain / old["file"]).read_bytes()
        assert {k: v for k, v in new.items() if "caption" not in k} == {
            k: v for k, v in old.items() if "caption" not in k
        }
        if not new["watermarked"]:
            assert (new["caption"], new["true_caption"]) == (old["caption"], old["true_caption"])
            continue
        phrases = CAPTION_PHRASES if new.get("language", "en") == "en" else CAPTION_PHRASES_ZH
        for key in ("caption", "true_caption"):
            assert old[key] in new[key] and any(p in new[key] for p in phrases), new[key]
        assert new["matched"] == (new["caption"] == new["true_caption"])
    with pytest.raises(UserInputError, match="watermark-caption-fraction"):
        WorldSpec(watermark_caption_fraction=1.5)


def test_junk_captions_replace_a_share_of_captions_and_change_nothing_else(tmp_path: Path) -> None:
    from pipeline.captions.rules import caption_features, caption_length

    spec = WorldSpec(images=60, seed=3, benchmark_images=0, planted_duplicates=0, min_side=48, max_side=64)
    plain = generate_world(tmp_path / "plain", spec)
    junk = generate_world(tmp_path / "junk", replace(spec, junk_caption_fraction=0.3))
    assert "junk_caption_fraction" not in json.loads((plain / "world.json").read_text())["spec"]
    before = pq.read_table(plain / "world.parquet").to_pylist()
    after = pq.read_table(junk / "world.parquet").to_pylist()
    assert "junk_caption" not in before[0]
    kinds = [r["junk_caption"] for r in after if r["junk_caption"]]
    assert 8 <= len(kinds) <= 30
    for old, new in zip(before, after, strict=True):
        assert (junk / new["file"]).read_bytes() == (plain / old["file"]).read_bytes()
        if new["junk_caption"] is None:
            assert {k: v for k, v in new.items() if k != "junk_caption"} == old
            continue
        assert new["matched"] is False and new["true_caption"] == old["true_caption"]
        # Each kind is what build_shards' default caption rules drop (boilerplate: by repeats).
        _, _, symbols, file_name, run, url, _ = caption_features(new["caption"])
        dropped = {
            "file_name": file_name,
            "url": url,
            "symbols": symbols > 0.5,
            "repeated": run > 5,
            "short": caption_length(new["caption"]) < 5,
            "boilerplate": new["caption"] == "click to enlarge",
        }
        assert dropped[new["junk_caption"]], new["caption"]
    with pytest.raises(UserInputError, match="junk-caption-fraction"):
        WorldSpec(junk_caption_fraction=-0.1)
