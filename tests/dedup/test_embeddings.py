"""Dedup with the score job's embeddings: benchmark copies the hashes miss, and SemDeDup.

Real Spark, a real HTTP server, a real (tiny, randomly initialised) open_clip model, scikit-image's
bundled photographs.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from pipeline.dataset import Dataset
from pipeline.dedup.options import DedupOptions
from pipeline.errors import UserInputError
from pipeline.synthetic.server import WorldServer
from testkit.transforms import bundled_photos, centre_crop, letterbox
from tests.dedup.test_job import _download_list, _matches, _raw_rows, _serve_list
from tests.stages import build, build_options, check_inputs, score, score_options
from tests.stages import dedup as run
from tests.stages import dedup_options as options_from_args

BENCHMARK = ("astronaut", "coffee", "chelsea")
OTHERS = ("rocket", "camera", "motorcycle", "brick")


@pytest.fixture(scope="module")
def scored_photos(
    spark, random_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path, dict]:
    """A corpus with a mirror image of one benchmark photo, a 15% centre crop of another, a
    letterboxed copy of the first (found by its centre hash) and a 25% centre crop of the third,
    and photos that are in no benchmark; scored with --save-embeddings. Returns the dataset, the
    benchmark folder and uid per file."""
    tmp = tmp_path_factory.mktemp("embeddings")
    photos = bundled_photos()
    bench = tmp / "benchmark"
    bench.mkdir()
    for name in BENCHMARK:
        photos[name].save(bench / f"{name}.png")
    files = {
        "mirror.jpg": photos["astronaut"].transpose(Image.Transpose.FLIP_LEFT_RIGHT),
        "crop.jpg": centre_crop(photos["coffee"], 0.15),
        "letterbox.jpg": letterbox(photos["astronaut"]),
        "crop25.jpg": centre_crop(photos["chelsea"], 0.25),
        **{f"{name}.jpg": photos[name] for name in OTHERS},
    }
    site = _serve_list(tmp, files, [])
    dataset = tmp / "dataset"
    with WorldServer(site) as server:
        captions = [(n, f"a photo of the {n.split('.')[0]}") for n in files]
        _download_list(spark, site, captions, dataset, server.base_url)
    uid_of = {r["url"].rsplit("/", 1)[-1]: r["uid"] for r in _raw_rows(dataset)}
    argv = ["--dataset", str(dataset), "--model", "corpusforge-tiny", "--pretrained", str(random_checkpoint)]
    score(spark, score_options([*argv, "--save-embeddings", "--device", "cpu"]))
    return dataset, bench, uid_of


def _dedup(spark, dataset: Path, bench: Path, *extra: str) -> dict:
    return run(spark, options_from_args(["--dataset", str(dataset), "--benchmark", str(bench), *extra]))


def test_mirror_and_crop_copies_missed_by_the_hashes_are_found_by_embeddings(spark, scored_photos) -> None:
    dataset, bench, uid_of = scored_photos
    _dedup(spark, dataset, bench)
    hashed = {m["uid"]: m for m in _matches(dataset) if m["reason"] == "benchmark_duplicate"}
    by_hash = set(hashed)
    assert uid_of["mirror.jpg"] not in by_hash, "a mirror image should be out of the hashes' reach"
    # The letterboxed copy needs no embedding: the centre hash of the picture inside its bars
    # finds it, and the thumbnails confirm it there.
    barred = hashed[uid_of["letterbox.jpg"]]
    assert barred["match_id"] == "benchmark/astronaut.png" and barred["matched_hash"] == "phash_centre"
    assert barred["verified"] is True and barred["signals"][-1] == "thumbnail"

    summary = _dedup(spark, dataset, bench, "--embeddings")
    matches = {m["uid"]: m for m in _matches(dataset)}
    mirror, crop = matches[uid_of["mirror.jpg"]], matches[uid_of["crop.jpg"]]
    assert mirror["reason"] == "benchmark_duplicate" and mirror["match_id"] == "benchmark/astronaut.png"
    assert mirror["matched_hash"] == "embedding"
    assert mirror["signals"][-2:] == ["embedding", "thumbnail"] and mirror["verified"] is True
    assert mirror["embedding_similarity"] >= 0.9
    assert crop["reason"] == "benchmark_duplicate" and crop["match_id"] == "benchmark/coffee.png"
    assert "thumbnail" in crop["signals"] and crop["embedding_similarity"] >= 0.9
    # A 25% crop is far from every hash; the thumbnails confirm it at the benchmark's 25% crop.
    assert uid_of["crop25.jpg"] not in by_hash
    deep = matches[uid_of["crop25.jpg"]]
    assert deep["match_id"] == "benchmark/chelsea.png" and deep["matched_hash"] == "embedding"
    assert deep["verified"] is True and deep["signals"][-2:] == ["embedding", "thumbnail"], deep
    assert matches[uid_of["letterbox.jpg"]]["match_id"] == "benchmark/astronaut.png"
    # Photos in no benchmark stay, however close a random model puts them: the thumbnails decide.
    assert not {uid_of[f"{n}.jpg"] for n in OTHERS} & set(matches)
    emb = summary["benchmark"]["embeddings"]
    assert emb["benchmark_images_embedded"] == 3 and not emb["reused"]
    assert emb["model"] == "corpusforge-tiny"
    # The benchmark embeddings are reused on a rerun with the same sources and model.
    again = _dedup(spark, dataset, bench, "--embeddings")
    assert again["benchmark"]["embeddings"]["reused"]
    assert {m["uid"] for m in _matches(dataset)} == set(matches)
    page = (dataset / "dedup" / "audit" / "index.html").read_text()
    assert "embedding similarity" in page and "embedding, mirror" in page


def test_every_embedding_candidate_goes_through_the_thumbnails(spark, scored_photos) -> None:
    # At similarity 0.05 a random model makes every (sample, benchmark image) pair a candidate;
    # only the copies survive the verification.
    dataset, bench, uid_of = scored_photos
    summary = _dedup(spark, dataset, bench, "--embeddings", "--embedding-min-similarity", "0.05")
    dropped = {m["uid"] for m in _matches(dataset)}
    assert dropped == {uid_of[f] for f in ("mirror.jpg", "crop.jpg", "letterbox.jpg", "crop25.jpg")}
    assert summary["benchmark"]["embeddings"]["candidates"] >= len(uid_of) * 2
    assert summary["benchmark_candidates_rejected_by_thumbnail"] > 0


def test_embeddings_need_scores_with_saved_embeddings(spark, scored_photos, tmp_path: Path) -> None:
    dataset, bench, _ = scored_photos
    unscored = tmp_path / "unscored"
    import shutil

    shutil.copytree(dataset / "raw", unscored / "raw")
    options = options_from_args(["--dataset", str(unscored), "--benchmark", str(bench), "--embeddings"])
    with pytest.raises(UserInputError, match=r"raw shard 00000 has no current scores.*--save-embeddings"):
        check_inputs("dedup", options)
    shutil.copytree(dataset / "scores", unscored / "scores")
    for npy in (unscored / "scores" / "embeddings").glob("00001_image.npy"):
        npy.unlink()
    with pytest.raises(UserInputError, match=r"00001_image.npy is missing"):
        check_inputs("dedup", options)
    with pytest.raises(UserInputError, match="needs the thumbnail verification"):
        DedupOptions(dataset="d", benchmarks=("b",), embeddings=True, max_thumbnail_distance=-1)
    with pytest.raises(UserInputError, match="--semantic-threshold must be in"):
        DedupOptions(dataset="d", semantic_threshold=1.5)


def _set_embeddings(dataset: Path, vectors: dict[str, np.ndarray]) -> None:
    """Replace the saved image embeddings of the named uids (others: random, far from all)."""
    rng = np.random.default_rng(5)
    data = Dataset(str(dataset))
    for shard in data.raw.complete_indices():
        scores = data.scores.shard(shard)
        uids = pq.read_table(dataset / "scores" / f"{shard:05d}.parquet").column("uid").to_pylist()
        path = dataset / "scores" / "embeddings" / f"{shard:05d}_image.npy"
        width = np.load(path).shape[1]
        rows = [vectors.get(u, rng.normal(size=width)) for u in uids]
        matrix = np.stack([r / np.linalg.norm(r) for r in rows]).astype(np.float16)
        buffer = io.BytesIO()
        np.save(buffer, matrix)
        path.write_bytes(buffer.getvalue())
        assert scores.is_complete()


def test_semantic_duplicates_form_groups_and_keep_one(spark, scored_photos, tmp_path: Path) -> None:
    import shutil

    source, _, uid_of = scored_photos
    dataset = tmp_path / "dataset"
    shutil.copytree(source / "raw", dataset / "raw")
    shutil.copytree(source / "scores", dataset / "scores")
    width = np.load(dataset / "scores" / "embeddings" / "00000_image.npy").shape[1]
    base = np.zeros(width)
    base[0] = 1.0
    # A chain: rocket ~ camera ~ motorcycle (cosine 0.98 each step), rocket and motorcycle 0.92.
    step = np.zeros(width)
    step[1] = 0.2
    chain = {
        uid_of["rocket.jpg"]: base,
        uid_of["camera.jpg"]: base + step,
        uid_of["motorcycle.jpg"]: base + 2 * step,
    }
    _set_embeddings(dataset, chain)
    argv = ["--dataset", str(dataset), "--semantic-threshold", "0.95", "--semantic-clusters", "2"]
    summary = run(spark, options_from_args(argv))
    matches = {m["uid"]: m for m in _matches(dataset) if m["reason"] == "semantic_duplicate"}
    areas = {r["uid"]: r["original_width"] * r["original_height"] for r in _raw_rows(dataset)}
    keep = min(chain, key=lambda u: (-areas[u], u))
    assert set(matches) == set(chain) - {keep}
    for match in matches.values():
        assert match["match_id"] == keep and match["signals"] == ["embedding"]
        assert match["embedding_similarity"] >= 0.95 and match["verified"] is None
    assert summary["by_reason"]["semantic_duplicate"] == 2
    assert summary["semantic"]["clusters"] == 2 and summary["semantic"]["pairs"] == 2
    # The audit shows the group: the kept sample beside each dropped member.
    audit = dataset / "dedup" / "audit"
    page = (audit / "index.html").read_text()
    assert "Semantic duplicates: 2 samples dropped, in 1 group" in page
    assert (audit / "semantic_000.png").exists()
    for uid in matches:
        assert f"<td>{keep}</td><td>{uid}</td><td>embedding</td>" in page
    # build_shards drops them, or keeps them with --keep-corpus-duplicates.
    built = build(spark, build_options(["--dataset", str(dataset), "--samples-per-shard", "100"]))
    assert built["dropped"]["semantic_duplicate"] == 2
    written = json.loads((dataset / "final" / "sizes.json").read_text())
    assert sum(written.values()) == len(uid_of) - 2


def test_semantic_keep_score_keeps_the_best_scored_member(spark, scored_photos, tmp_path: Path) -> None:
    import itertools
    import shutil

    source, _, uid_of = scored_photos
    dataset = tmp_path / "dataset"
    shutil.copytree(source / "raw", dataset / "raw")
    shutil.copytree(source / "scores", dataset / "scores")
    areas = {r["uid"]: r["original_width"] * r["original_height"] for r in _raw_rows(dataset)}
    files = sorted((dataset / "scores").glob("*.parquet"))
    scores = {
        r["uid"]: r["clip_score"]
        for f in files
        for r in pq.read_table(f, columns=["uid", "clip_score"]).to_pylist()
    }
    # Three photos whose largest is not their best-scored: the two rules keep different members.
    trio = next(
        group
        for group in itertools.combinations(sorted(uid_of.values()), 3)
        if min(group, key=lambda u: (-areas[u], u)) != max(group, key=lambda u: (scores[u], u))
    )
    width = np.load(dataset / "scores" / "embeddings" / "00000_image.npy").shape[1]
    base, step = np.zeros(width), np.zeros(width)
    base[0], step[1] = 1.0, 0.1
    _set_embeddings(dataset, {uid: base + i * step for i, uid in enumerate(trio)})
    argv = ["--dataset", str(dataset), "--semantic-threshold", "0.95", "--semantic-clusters", "1"]
    summary = run(spark, options_from_args([*argv, "--semantic-keep", "score"]))
    keep = min(trio, key=lambda u: (-scores[u], u))
    matches = {m["uid"]: m for m in _matches(dataset) if m["reason"] == "semantic_duplicate"}
    assert set(matches) == set(trio) - {keep}
    assert {m["match_id"] for m in matches.values()} == {keep}
    assert summary["options"]["semantic_keep"] == "score"


def test_benchmark_images_are_embedded_in_batches(
    random_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pipeline.dedup.embeddings as embeddings
    from pipeline.dedup.benchmark_sources import resolve_sources
    from pipeline.image.options import ImageOptions
    from pipeline.score.model import load_model

    photos = bundled_photos()
    for name in (*BENCHMARK, "rocket", "camera"):
        photos[name].save(tmp_path / f"{name}.png")
    (source,) = resolve_sources((str(tmp_path),))
    loaded = load_model("corpusforge-tiny", str(random_checkpoint), "cpu")
    whole = embeddings.embed_images(source, source.files, ImageOptions(), loaded)["rows"]
    monkeypatch.setattr(embeddings, "EMBED_BATCH", 2)
    batched = embeddings.embed_images(source, source.files, ImageOptions(), loaded)["rows"]
    assert [r["benchmark_id"] for r in batched] == [r["benchmark_id"] for r in whole] and len(whole) == 5
    for a, b in zip(whole, batched, strict=True):
        first, second = (np.frombuffer(r["embeddings"], np.float16).reshape(3, -1) for r in (a, b))
        assert np.allclose(first, second, atol=2e-3)
        assert np.allclose(np.linalg.norm(first.astype(np.float32), axis=1), 1, atol=1e-2)
