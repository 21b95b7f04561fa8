"""Retrieval recall and zero-shot accuracy on known features; evaluation sets from disk."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from pipeline.errors import UserInputError
from pipeline.synthetic.world import generate_world, held_out_spec
from pipeline.train.evaluate import (
    folder_eval_set,
    load_templates,
    retrieval_metrics,
    shard_eval_set,
    world_eval_set,
)


def test_perfect_pairs_have_recall_one_and_shifted_pairs_recall_zero_at_1() -> None:
    torch.manual_seed(0)
    features = F.normalize(torch.randn(20, 32), dim=-1)
    perfect = retrieval_metrics(features, features, "x")
    assert all(value == 1.0 for value in perfect.values()) and len(perfect) == 6
    shifted = retrieval_metrics(features, features.roll(1, dims=0), "x")
    assert shifted["x/image_to_text_R@1"] == 0.0 and shifted["x/text_to_image_R@1"] == 0.0


def test_recall_at_k_counts_the_rank_of_the_true_caption() -> None:
    image = torch.eye(4)
    # Image i's own caption ranks i-th (0-based) among the four captions.
    text = torch.tensor(
        [[1.0, 0.0, 0.0, 0.0], [0.9, 0.5, 0.0, 0.0], [0.9, 0.8, 0.3, 0.0], [0.9, 0.8, 0.7, 0.1]]
    ).T
    metrics = retrieval_metrics(image, text, "t")
    assert metrics["t/image_to_text_R@1"] == 0.25
    assert metrics["t/image_to_text_R@5"] == 1.0


def test_world_eval_set_reads_labels_and_true_captions(tmp_path: Path) -> None:
    world = generate_world(tmp_path / "world", held_out_spec(images=12, seed=3))
    first = world_eval_set(world)
    assert len(first.images) == len(first.labels) == len(first.captions) == 12
    assert len(first.classnames) == 32 and all(0 <= label < 32 for label in first.labels)
    assert all(Path(image).is_file() for image in first.images)
    assert world_eval_set(world).captions == first.captions
    # The trainer never draws a world itself: a missing one is a clear error naming the fix.
    with pytest.raises(UserInputError, match=r"no world\.json or world\.parquet in it; .*corpusforge synth"):
        world_eval_set(tmp_path / "missing")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "world.json").write_text("{}")
    (tmp_path / "broken" / "world.parquet").write_text("nope")
    with pytest.raises(UserInputError, match="not a readable synthetic world"):
        world_eval_set(tmp_path / "broken")


def test_folder_eval_set_uses_subfolders_as_classes(tmp_path: Path) -> None:
    for name in ("golden_retriever", "tabby_cat"):
        (tmp_path / "f" / name / "nested").mkdir(parents=True)
        (tmp_path / "f" / name / "nested" / "a.JPG").write_bytes(b"x")
        (tmp_path / "f" / name / "notes.txt").write_text("ignored")
    eval_set = folder_eval_set(tmp_path / "f", ("a photo of a {}.",))
    assert eval_set.classnames == ["golden retriever", "tabby cat"] and eval_set.labels == [0, 1]
    with pytest.raises(UserInputError, match="at least two class sub-folders"):
        folder_eval_set(tmp_path / "f" / "tabby_cat", ("{}",))
    with pytest.raises(UserInputError, match="no such directory"):
        folder_eval_set(tmp_path / "missing", ("{}",))


def test_templates_by_name_or_file(tmp_path: Path) -> None:
    assert len(load_templates("simple")) == 7 and len(load_templates("openai")) == 80
    (tmp_path / "t.txt").write_text("a {} here\n\nthe {}\n")
    assert load_templates(str(tmp_path / "t.txt")) == ["a {} here", "the {}"]
    (tmp_path / "bad.txt").write_text("no placeholder\n")
    with pytest.raises(UserInputError, match="needs a"):
        load_templates(str(tmp_path / "bad.txt"))
    with pytest.raises(UserInputError, match="not 'simple'"):
        load_templates("fancy")


def test_shard_eval_set_reads_up_to_the_cap(val_shards: Path) -> None:
    eval_set = shard_eval_set([str(val_shards / "000000.tar")], max_samples=25)
    assert len(eval_set.images) == len(eval_set.captions) == 25 and eval_set.labels is None
