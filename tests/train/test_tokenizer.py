"""Tokenizers that read Chinese: cn_clip's BERT vocabulary, learnt WordPiece, saved with the checkpoint."""

from __future__ import annotations

import pickle
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from pipeline.errors import UserInputError
from pipeline.score.model import load_model
from pipeline.score.tokenizer import WordPieceTokenizer, train_wordpiece
from pipeline.synthetic.scenes import Scene
from pipeline.synthetic.world import generate_world, held_out_spec
from pipeline.train.checkpoint import load_checkpoint
from pipeline.train.loop import train
from pipeline.train.options import options_from_args
from pipeline.train.tokenizer_choice import bert_chinese_vocab, build_tokenizer, check_tokenizer
from testkit.scene_shards import write_scene_shards

TEXTS = [
    "两个红色的圆形，位于条纹灰色背景的左侧",
    "three red circles at the left of a striped grey background",
    "两个red circles，位于条纹米色背景的上方",
    "Ünïcode CAFÉ 😀 IMG_1234.jpg http://x.y/z?q=1 わたし 한국어",
    "",
    "很长的标题" * 20,
]


@pytest.fixture(scope="module")
def bert_chinese() -> WordPieceTokenizer:
    tokenizer = build_tokenizer("bert-chinese", 32, [])
    assert tokenizer is not None
    return tokenizer


def test_bert_chinese_gives_cn_clip_ids(bert_chinese: WordPieceTokenizer) -> None:
    from cn_clip.clip import tokenize

    ids = bert_chinese(TEXTS)
    assert ids.shape == (len(TEXTS), 32) and ids.dtype == torch.long
    assert torch.equal(ids, tokenize(TEXTS, context_length=32))
    assert bert_chinese.vocab_size == 21128 and bert_chinese_vocab().is_file()
    assert ids[-1, -1] == bert_chinese.eos_id  # a cut text still ends with [SEP]
    assert bert_chinese.decode(ids[0].tolist()).replace(" ", "") == TEXTS[0]
    assert bert_chinese.decode(ids[2].tolist()) == "两 个 red circles ， 位 于 条 纹 米 色 背 景 的 上 方"
    assert torch.equal(pickle.loads(pickle.dumps(bert_chinese))(TEXTS), ids)
    assert torch.equal(WordPieceTokenizer.from_record(bert_chinese.record())(TEXTS), ids)


def test_learnt_wordpiece_covers_the_captions() -> None:
    captions = [
        Scene(shape, colour, count, "left", "grey", "striped").caption_in(language)
        for shape in ("circle", "square")
        for colour in ("red", "blue")
        for count in (1, 2)
        for language in ("en", "zh", "zh-en")
    ]
    tokenizer = train_wordpiece(captions, 300, 32)
    assert tokenizer.vocab_size <= 300
    unknown = tokenizer._tokenizer.token_to_id("[UNK]")
    for caption in captions:
        ids = tokenizer.encode(caption)
        assert unknown not in ids
        assert tokenizer.decode(ids).replace(" ", "") == caption.replace(" ", "")


def test_bad_tokenizer_choices_are_user_errors(tmp_path: Path) -> None:
    for choice in ("gpt2", "wordpiece:5", "wordpiece:x", str(tmp_path / "none.json")):
        with pytest.raises(UserInputError, match="--tokenizer"):
            check_tokenizer(choice)
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(UserInputError, match="not a tokenizers JSON"):
        build_tokenizer(str(tmp_path / "bad.json"), 32, [])
    (tmp_path / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n红\n色\n")
    assert build_tokenizer(str(tmp_path / "vocab.txt"), 8, [])(["红色"]).tolist() == [
        [2, 4, 5, 3, 0, 0, 0, 0]
    ]


def _train_args(shards: Path, out: Path, *extra: str) -> list[str]:
    return [
        "--shards",
        f"{shards}/{{000000..000001}}.tar",
        "--output",
        str(out),
        "--batch-size",
        "8",
        "--workers",
        "0",
        "--threads",
        "1",
        "--no-tensorboard",
        *extra,
    ]


@pytest.fixture(scope="module")
def zh_data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two training shards with mixed-language captions and a small Chinese held-out world."""
    root = tmp_path_factory.mktemp("zh_data")
    write_scene_shards(root / "final", shards=2, per_shard=24, language="mixed")
    spec = replace(held_out_spec(images=24, language="zh"), min_side=64, max_side=80)
    return root / "final", generate_world(root / "eval", spec)


@pytest.fixture(scope="module")
def zh_run(zh_data: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    shards, world = zh_data
    out = tmp_path_factory.mktemp("zh_run")
    args = _train_args(shards, out, "--steps", "3", "--tokenizer", "bert-chinese", "--eval-world", str(world))
    return out, train(options_from_args(args))


def test_training_saves_the_tokenizer_with_the_weights(zh_run: tuple[Path, dict]) -> None:
    out, summary = zh_run
    assert summary["tokenizer"] == "bert-chinese"
    assert {"world/zeroshot_top1", "world_zh/zeroshot_top1", "world/text_to_image_R@1"} <= set(
        summary["eval"]
    )
    checkpoint = load_checkpoint(out / "checkpoints" / "step_00000003.pt")
    assert checkpoint["tokenizer"]["name"] == "bert-chinese"
    assert checkpoint["state_dict"]["token_embedding.weight"].shape == (21128, 96)
    model_file = torch.load(out / "model.pt", weights_only=True)
    assert model_file["tokenizer"] == checkpoint["tokenizer"]
    loaded = load_model("corpusforge-tiny", str(out / "model.pt"), "cpu")
    assert isinstance(loaded.tokenizer, WordPieceTokenizer) and loaded.tokenizer.name == "bert-chinese"
    state = loaded.model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in checkpoint["state_dict"].items())
    with torch.no_grad():
        text = loaded.model.encode_text(loaded.tokenizer(TEXTS[:3]), normalize=True)
    assert text.shape == (3, 64) and torch.isfinite(text).all()


def test_resume_keeps_the_checkpoint_tokenizer(
    zh_data: tuple[Path, Path], zh_run: tuple[Path, dict], tmp_path: Path
) -> None:
    import shutil

    out = tmp_path / "run"
    shutil.copytree(zh_run[0], out)
    shards = zh_data[0]
    with pytest.raises(UserInputError, match="trained with tokenizer 'bert-chinese'"):
        train(
            options_from_args(
                _train_args(shards, out, "--steps", "4", "--resume", "latest", "--tokenizer", "wordpiece:300")
            )
        )
    summary = train(options_from_args(_train_args(shards, out, "--steps", "4", "--resume", "latest")))
    assert summary["steps"] == 4 and summary["tokenizer"] == "bert-chinese"


def test_learnt_vocabulary_sizes_the_text_tower(zh_data: tuple[Path, Path], tmp_path: Path) -> None:
    summary = train(
        options_from_args(_train_args(zh_data[0], tmp_path, "--steps", "1", "--tokenizer", "wordpiece:300"))
    )
    assert summary["tokenizer"] == "wordpiece:300"
    loaded = load_model("corpusforge-tiny", str(tmp_path / "model.pt"), "cpu")
    size = loaded.tokenizer.vocab_size
    assert 100 < size <= 300
    assert loaded.model.state_dict()["token_embedding.weight"].shape[0] == size
    unknown = loaded.tokenizer._tokenizer.token_to_id("[UNK]")
    assert unknown not in loaded.tokenizer.encode("三个白色的正方形，位于波点青色背景的中央")
