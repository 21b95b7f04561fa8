"""build_shards' caption rules (issue 18) on planted captions: each rule's drop reason, the order
of the rules, per-language counts and the repaired caption in the final shards.

The dataset is written directly (``testkit.raw_shards.write_captioned_shard``): raw shards and the
scores the score job would write, language and repair columns included, without a download.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.dataset import Dataset
from pipeline.errors import UserInputError
from pipeline.report.collect import collect_scores
from pipeline.report.html import _scores
from testkit.raw_shards import write_captioned_shard
from tests.build.conftest import build_options, read_final, selection
from tests.stages import build as run

# caption -> the reason it must get with every rule on (None: kept); one caption per rule, and
# captions that break two rules carry the first one in docs/build_shards.md order.
PLANTED = {
    "a red circle on a blue square": None,
    "a small striped circle next to a large square": None,
    "红色的圆形在蓝色方块上": None,
    "the cafÃ© table with a red cup": None,  # repaired to "the café table ..."
    "": "caption_too_short",
    "red": "caption_too_few_words",
    "IMG_1234.jpg": "caption_too_few_words",  # one word: the earlier rule wins
    "IMG_1234.jpg IMG_1235.jpg": "caption_file_name",
    "DSC00012 0034": "caption_file_name",
    "buy now at https://shop.example/x": "caption_url",
    "write to sales@shop.example today": "caption_url",
    "great photo!!!!!!!!": "caption_repeated_chars",
    "a b 12345 %%% ###": "caption_symbols",
    "Ein roter Kreis auf einem blauen Quadrat": "language",
}
PLANTED_MOJIBAKE = "the cafÃ© table with a red cup"
BOILERPLATE = "Click to enlarge"  # on 4 images, one of them in other case and spacing
RULES = (
    "--min-caption-length", "1",
    "--min-caption-words", "2",
    "--drop-file-names",
    "--drop-urls",
    "--max-repeated-chars", "5",
    "--max-symbol-share", "0.5",
    "--max-caption-repeats", "3",
    "--languages", "en,zh",
    "--samples-per-shard", "4",
    "--min-shards", "0",
)  # fmt: skip


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """Two raw shards with the planted captions (the boilerplate split across both); uid -> caption."""
    root = tmp_path_factory.mktemp("caption_rules") / "dataset"
    dataset = Dataset(str(root))
    first = [*PLANTED, BOILERPLATE, BOILERPLATE]
    second = [BOILERPLATE, "click  to ENLARGE", "a large dotted square"]
    captions = {}
    for index, shard in enumerate((first, second)):
        captions.update(zip(write_captioned_shard(dataset, index, shard, seed=index), shard, strict=True))
    return root, captions


def test_each_rule_drops_its_planted_caption(spark, planted: tuple[Path, dict[str, str]]) -> None:
    root, captions = planted
    summary = run(spark, build_options(root, *RULES))
    records = selection(root)
    want = {**PLANTED, BOILERPLATE: "caption_boilerplate", "click  to ENLARGE": "caption_boilerplate"}
    want["a large dotted square"] = None
    assert {uid: records[uid]["reason"] for uid in captions} == {uid: want[c] for uid, c in captions.items()}
    dropped = summary["dropped"]
    assert dropped["caption_boilerplate"] == 4 and dropped["caption_file_name"] == 2
    assert summary["languages"]["zh"] == {"samples": 1, "kept": 1}
    assert summary["languages"]["de"]["kept"] == 0 and summary["languages"]["en"]["kept"] == 4
    # The final text is the repaired caption; the downloaded one stays in the metadata.
    final = {key: members for shard in read_final(root) for key, members in shard}
    repaired = next(uid for uid, c in captions.items() if c.startswith("the caf"))
    assert final[repaired]["txt"].decode() == "the café table with a red cup"
    meta = json.loads(final[repaired]["json"])
    assert (meta["caption"], meta["original_caption"]) == ("the café table with a red cup", PLANTED_MOJIBAKE)
    assert len(final) == sum(1 for reason in want.values() if reason is None)
    # The report's score section: scored and kept samples per caption language.
    scores = collect_scores(Dataset(str(root)))
    languages = {language: (n, kept) for language, n, kept in scores.languages}
    assert languages["zh"] == (1, 1) and languages["en"][1] == 4 and languages["de"][1] == 0
    page = _scores(scores, {})
    assert "caption language" in page and "kept by build_shards" in page


def test_languages_need_scores(spark, tmp_path: Path) -> None:
    root = tmp_path / "dataset"
    write_captioned_shard(Dataset(str(root)), 0, ["a red circle", "a blue square"], scored=False)
    with pytest.raises(UserInputError, match="--languages needs CLIP scores"):
        run(spark, build_options(root, "--languages", "en"))


def test_the_defaults_drop_captions_that_describe_nothing(
    spark, planted: tuple[Path, dict[str, str]]
) -> None:
    # No rule option given: LAION's length minimum, file names, URLs, character runs and symbol
    # soup are on; the word, language and boilerplate rules keep what they would otherwise drop.
    root, captions = planted
    summary = run(spark, build_options(root, "--samples-per-shard", "4", "--min-shards", "0", "--overwrite"))
    records = selection(root)
    want = {
        **PLANTED,
        "red": "caption_too_short",  # 3 characters, under LAION's 5
        "IMG_1234.jpg": "caption_file_name",
        "Ein roter Kreis auf einem blauen Quadrat": None,  # every language is kept
        BOILERPLATE: None,  # 4 images, under the default 100
        "click  to ENLARGE": None,
        "a large dotted square": None,
    }
    assert {uid: records[uid]["reason"] for uid in captions} == {uid: want[c] for uid, c in captions.items()}
    assert summary["dropped"]["caption_file_name"] == 3
    assert "language" not in summary["dropped"] and "caption_boilerplate" not in summary["dropped"]
