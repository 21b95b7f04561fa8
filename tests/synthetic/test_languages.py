"""Caption languages of the synthetic world: Chinese and mixed captions, English unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipeline.errors import UserInputError
from pipeline.synthetic.scenes import COLOURS_ZH, SHAPES_ZH, Scene, all_labels, label_zh
from pipeline.synthetic.world import WorldSpec, generate_world

SPEC = {
    "images": 24,
    "seed": 3,
    "benchmark_images": 2,
    "planted_duplicates": 1,
    "min_side": 64,
    "max_side": 96,
}


def test_chinese_captions_are_compositional() -> None:
    scene = Scene("circle", "red", 2, "left", "grey", "striped")
    assert scene.caption_in("en") == scene.caption
    assert scene.caption_in("zh") == "两个红色的圆形，位于条纹灰色背景的左侧"
    assert scene.caption_in("zh-en") == "两个red circles，位于条纹灰色背景的左侧"
    assert label_zh("blue diamond") == "蓝色菱形"
    assert len({label_zh(label) for label in all_labels()}) == 32
    with pytest.raises(ValueError, match="unknown caption language"):
        scene.caption_in("fr")


def test_worlds_in_each_language_draw_the_same_pictures(tmp_path: Path) -> None:
    worlds = {
        lang: generate_world(tmp_path / lang, WorldSpec(**SPEC, language=lang))
        for lang in ("en", "zh", "bilingual", "mixed")
    }
    rows = {lang: pq.read_table(w / "world.parquet").to_pylist() for lang, w in worlds.items()}
    for lang in ("zh", "bilingual", "mixed"):
        assert (worlds[lang] / "images" / "000007.jpg").read_bytes() == (
            worlds["en"] / "images" / "000007.jpg"
        ).read_bytes()
        assert [r["label"] for r in rows[lang]] == [r["label"] for r in rows["en"]]
        assert [r["matched"] for r in rows[lang]] == [r["matched"] for r in rows["en"]]
    assert "language" not in rows["en"][0]  # the English world's files are as they always were
    assert "language" not in json.loads((worlds["en"] / "world.json").read_text())["spec"]
    for row in rows["zh"]:
        assert row["language"] == "zh"
        colour, shape = row["label"].split()
        assert f"{COLOURS_ZH[colour]}的{SHAPES_ZH[shape]}" in row["true_caption"]
        assert row["matched"] == (row["caption"] == row["true_caption"])
    assert {r["language"] for r in rows["mixed"]} == {"en", "zh", "zh-en"}
    assert {r["language"] for r in rows["bilingual"]} == {"en", "zh"}
    meta = json.loads((worlds["zh"] / "world.json").read_text(encoding="utf-8"))
    assert meta["labels_zh"] == [label_zh(label) for label in meta["labels"]]


def test_unknown_language_is_refused() -> None:
    with pytest.raises(UserInputError, match="--language"):
        WorldSpec(language="fr")
