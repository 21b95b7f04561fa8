"""Probes end to end: a world with planted watermarks, downloaded and scored with embeddings, a probe
trained on its labels, applied by the score job (reading the stored embeddings) and filtered on by
build_shards. Real Spark, real servers on 127.0.0.1, the real tiny model."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipeline.dataset import Dataset
from pipeline.errors import UserInputError
from pipeline.probe.embeddings import labelled_embeddings
from pipeline.probe.model import load_probe, save_probe
from pipeline.probe.options import ProbeTrainOptions
from pipeline.probe.train import train_probe
from pipeline.synthetic.server import WorldServer
from pipeline.synthetic.world import WorldSpec, generate_world, write_url_lists
from tests.stages import build, build_options, check_inputs, download, download_options, score, score_options

WATERMARK_SPEC = WorldSpec(
    images=72,
    seed=5,
    watermark_fraction=0.35,
    mismatch_fraction=0.0,
    benchmark_images=0,
    planted_duplicates=0,
    min_side=128,
    max_side=224,
)


@pytest.fixture(scope="module")
def watermarked(
    spark, random_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Path, dict[str, bool]]]:
    """The watermark world downloaded (2 raw shards) and scored with saved embeddings; uid -> label."""
    root = tmp_path_factory.mktemp("probe_world")
    world = generate_world(root / "world", WATERMARK_SPEC)
    dataset = root / "dataset"
    with WorldServer(world) as server:
        lists = write_url_lists(world, server.base_url, out=root / "lists")
        download(
            spark,
            download_options(
                [
                    "--urls",
                    str(lists["parquet"]),
                    "--dataset",
                    str(dataset),
                    "--allow-network",
                    "127.0.0.1/32",
                    "--samples-per-shard",
                    "36",
                    "--keep-cols",
                    "watermarked",
                ]
            ),
        )
    score(spark, _score_options(dataset, random_checkpoint, "--save-embeddings"))
    labels = {}
    for raw in Dataset(str(dataset)).raw.complete_shards():
        for row in raw.successes(["uid", "extra"]):
            labels[row["uid"]] = bool(json.loads(row["extra"])["watermarked"])
    yield dataset, labels


def _score_options(dataset: Path, checkpoint: Path, *extra: str):
    return score_options(
        ["--dataset", str(dataset), "--model", "corpusforge-tiny", "--pretrained", str(checkpoint), *extra]
    )


def _labels_file(path: Path, labels: dict[str, bool]) -> Path:
    path.write_text("uid,label\n" + "".join(f"{uid},{int(flag)}\n" for uid, flag in sorted(labels.items())))
    return path


def _train(dataset: Path, labels: Path, output: Path, *extra: str):
    options = ProbeTrainOptions(
        dataset=str(dataset), labels=str(labels), name="watermark", output=str(output), **dict(extra)
    )
    return train_probe(options)


def test_probe_trained_applied_and_filtered(
    spark, watermarked: tuple[Path, dict[str, bool]], random_checkpoint: Path, tmp_path: Path
) -> None:
    source, labels = watermarked
    assert 15 <= sum(labels.values()) <= 40 < len(labels)
    dataset = tmp_path / "dataset"
    shutil.copytree(source, dataset)
    probe_file = tmp_path / "watermark.safetensors"
    probe = _train(dataset, _labels_file(tmp_path / "labels.csv", labels), probe_file)
    metrics = probe.info.validation
    assert probe.info.model == "corpusforge-tiny" and probe.info.pretrained == str(random_checkpoint)
    assert metrics["samples"] >= 10 and 0 < metrics["positives"] < metrics["samples"]
    # The random tiny checkpoint barely sees the tiled watermark, and 72 labels give a noisy probe even
    # for the band style (docs/benchmarks.md, benchmarks/probe_watermark.py): the metrics are
    # measured and recorded, the separation itself is tested on planted embeddings (test_fit.py).
    assert 0.0 <= metrics["roc_auc"] <= 1.0 and 0.0 < metrics["suggested_threshold"] < 1.0
    assert load_probe(str(probe_file)).info == probe.info

    # The probe-only pass: scores resume, the probes read the stored embeddings.
    summary = score(
        spark, _score_options(dataset, random_checkpoint, "--save-embeddings", "--probe", str(probe_file))
    )
    assert summary["scored_this_run"] == 0 and summary["shards_resumed"] == summary["shards"]
    assert summary["probes"]["watermark"]["above_suggested_threshold"] > 0
    tables = [pq.read_table(p) for p in sorted((dataset / "scores" / "probes").glob("*.parquet"))]
    rows = [r for t in tables for r in t.to_pylist()]
    assert {r["probe"] for r in rows} == {"watermark"} and len(rows) == len(labels)
    probe_scores = {r["uid"]: r["score"] for r in rows}

    threshold = metrics["suggested_threshold"]
    built = build(
        spark,
        build_options(
            ["--dataset", str(dataset), "--probe-max", f"watermark={threshold}", "--min-shards", "0"]
        ),
    )
    assert built["dropped"]["probe"] == built["probe_drops"]["watermark"] > 0
    selection = [
        r
        for p in sorted((dataset / "final" / "_selection").glob("*.parquet"))
        for r in pq.read_table(p).to_pylist()
    ]
    dropped = {r["uid"] for r in selection if r["reason"] == "probe"}
    assert all(r["match_id"] == "watermark" for r in selection if r["reason"] == "probe")
    assert dropped == {uid for uid, s in probe_scores.items() if s > threshold}
    assert 0 < len(dropped) < len(labels)
    assert built["kept"] == len(labels) - len(dropped)


def test_probe_errors(
    watermarked: tuple[Path, dict[str, bool]], random_checkpoint: Path, tmp_path: Path
) -> None:
    dataset, labels = watermarked
    out = tmp_path / "p.safetensors"
    one_class = _labels_file(tmp_path / "one.csv", {u: False for u in list(labels)[:20]})
    with pytest.raises(UserInputError, match="both classes"):
        _train(dataset, one_class, out)
    few = _labels_file(tmp_path / "few.csv", dict(list(labels.items())[:5]))
    with pytest.raises(UserInputError, match="at least 10"):
        _train(dataset, few, out)
    unknown = _labels_file(tmp_path / "unknown.csv", {**labels, "f" * 32: True, "e" * 32: False})
    with pytest.raises(UserInputError, match=r"2 of \d+ labelled uids .*eeee"):
        _train(dataset, unknown, out)
    (tmp_path / "bad.csv").write_text("uid,label\nabc,2\n")
    with pytest.raises(UserInputError, match=r"bad.csv, line 2: label '2' of a binary probe"):
        _train(dataset, tmp_path / "bad.csv", out)

    # A probe of another embedding model is refused before Spark starts.
    probe = _train(
        dataset, _labels_file(tmp_path / "labels.csv", labels), out, ("kind", "mlp"), ("hidden", 16)
    )
    other = tmp_path / "other.safetensors"
    save_probe(
        type(probe)(
            type(probe.info)(**{**probe.info.__dict__, "pretrained": "/elsewhere.pt"}), probe.weights
        ),
        str(other),
    )
    with pytest.raises(UserInputError, match="trained on embeddings of corpusforge-tiny .*elsewhere"):
        check_inputs("score", _score_options(dataset, random_checkpoint, "--probe", str(other)))
    (tmp_path / "pickle.safetensors").write_bytes(b"\x80\x04K\x01.")
    with pytest.raises(UserInputError, match="not a probe file"):
        load_probe(str(tmp_path / "pickle.safetensors"))
    # build_shards needs probe scores before it filters on them.
    with pytest.raises(UserInputError, match="need probe scores"):
        check_inputs("build", build_options(["--dataset", str(dataset), "--probe-min", "watermark=0.1"]))


def test_probe_applied_while_scoring_from_scratch(
    spark, watermarked: tuple[Path, dict[str, bool]], random_checkpoint: Path, tmp_path: Path
) -> None:
    """``--probe`` in the run that computes the scores (no stored embeddings, none saved): the
    probe reads the embeddings just computed, and its scores are those of the stored embeddings of
    the same images and checkpoint."""
    source, labels = watermarked
    probe_file = tmp_path / "watermark.safetensors"
    probe = _train(source, _labels_file(tmp_path / "labels.csv", labels), probe_file)
    stored = labelled_embeddings(str(source), {uid: float(flag) for uid, flag in labels.items()})
    expected = dict(zip(stored.uids, probe.predict(stored.embeddings).tolist(), strict=True))

    dataset = tmp_path / "dataset"
    shutil.copytree(source, dataset)
    Dataset(str(dataset)).scores.remove()
    summary = score(spark, _score_options(dataset, random_checkpoint, "--probe", str(probe_file)))
    assert summary["scored_this_run"] == len(labels) and summary["shards_resumed"] == 0
    scores_folder = Dataset(str(dataset)).scores
    assert not any(scores_folder.shard(i).has_embeddings("image") for i in scores_folder.complete_indices())
    rows = [
        r
        for i in scores_folder.complete_indices()
        for r in scores_folder.shard(i).probes_file.read().to_pylist()
    ]
    assert {r["probe"] for r in rows} == {"watermark"}
    got = {r["uid"]: r["score"] for r in rows}
    assert got.keys() == expected.keys()
    # Stored embeddings are float16, the probe's input while scoring is rounded the same way.
    assert max(abs(got[uid] - expected[uid]) for uid in got) < 1e-3
