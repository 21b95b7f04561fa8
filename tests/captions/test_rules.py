"""The caption rules, unicode repair and language identification as pure functions (fast)."""

from __future__ import annotations

import pytest

from pipeline.captions.language import UNDETERMINED, LanguageIdentifier, cjk_language
from pipeline.captions.repair import repair_caption
from pipeline.captions.rules import (
    caption_features,
    caption_key,
    caption_length,
    has_url_or_email,
    longest_run,
    looks_like_file_name,
    symbol_share,
    word_count,
)


@pytest.mark.parametrize(
    ("caption", "words"),
    [("a red car", 3), ("  a   red\tcar ", 3), ("一只猫", 3), ("Tesla Model 3 白色", 5), ("夕焼け", 3),
     ("빨간 스포츠카", 2), ("- - !!", 0), ("", 0)],
)  # fmt: skip
def test_word_count(caption: str, words: int) -> None:
    assert word_count(caption) == words


@pytest.mark.parametrize(
    ("caption", "length"),
    [("a red car", 9), ("  cat \n", 3), ("日落", 6), ("猫", 3), ("노을", 6), ("夕焼け", 9),
     ("iPhone 15 白色", 16), ("", 0)],
)  # fmt: skip
def test_caption_length_counts_a_cjk_character_as_three(caption: str, length: int) -> None:
    # LAION's minimum of 5 then drops "cat" and "猫" alike, and keeps "日落" (sunset) as "sunset".
    assert caption_length(caption) == length


def test_caption_features_are_what_the_rules_compare() -> None:
    assert caption_features("IMG_1234.jpg") == (12, 1, 0.5, True, 1, False, caption_key("img_1234.jpg"))
    spam = "see www.example.com!!!!!!"
    assert caption_features(spam) == (25, 2, 8 / 24, False, 6, True, caption_key(spam))


def test_symbol_share() -> None:
    assert symbol_share("a red car") == 0.0
    assert symbol_share("") == 0.0
    assert symbol_share("###") == 1.0
    assert symbol_share("ab 12") == 0.5
    assert symbol_share("一只猫!") == 0.25


@pytest.mark.parametrize(
    "caption",
    ["IMG_1234.jpg", "DSC00012", "image.png", "photo (2).JPEG", "PXL_20230101_123456", "20190514_123456",
     "dscn0042.JPG", " IMG 2041 ", "Screenshot 2023-01-01 at 10.00.00.png", "p1010023"],
)  # fmt: skip
def test_file_names(caption: str) -> None:
    assert looks_like_file_name(caption)


@pytest.mark.parametrize(
    "caption", ["A red car.", "Sample image 3", "The jpg file format", "image of a dog", "2019", "photo bar"]
)
def test_not_file_names(caption: str) -> None:
    assert not looks_like_file_name(caption)


def test_longest_run_ignores_digits_and_spaces() -> None:
    assert longest_run("aaaaaaa") == 7
    assert longest_run("great!!!!!!!!") == 8
    assert longest_run("1000000 dollars") == 2
    assert longest_run("a    b") == 1
    assert longest_run("哈哈哈哈哈哈") == 6
    assert longest_run("") == 0


@pytest.mark.parametrize(
    ("caption", "found"),
    [("see https://x.example/a", True), ("visit www.shop.example now", True), ("ftp://files.example", True),
     ("mail me at a.b+c@shop.example.co", True), ("amazon deals", False), ("5 p.m. at the cafe", False),
     ("@handle on twitter", False)],
)  # fmt: skip
def test_urls_and_emails(caption: str, found: bool) -> None:
    assert has_url_or_email(caption) is found


def test_caption_key_ignores_case_and_spacing() -> None:
    assert caption_key("Click to  Enlarge") == caption_key(" click to enlarge\n")
    assert caption_key("click to enlarge") != caption_key("click to shrink")
    assert caption_key("   ") is None
    assert -(2**63) <= caption_key("x") < 2**63


def test_repair() -> None:
    assert repair_caption("cafÃ© au lait") == ("café au lait", True)
    assert repair_caption("salt &amp; pepper") == ("salt & pepper", True)
    assert repair_caption("") == ("", False)
    # Valid text is left alone: curly quotes and the full-width punctuation of CJK captions.
    for clean in ("“quoted” text", "现代客厅，灰色沙发", "a red car"):
        assert repair_caption(clean) == (clean, False)


@pytest.fixture(scope="module")
def identifier() -> LanguageIdentifier:
    return LanguageIdentifier()


@pytest.mark.parametrize(
    ("caption", "language"),
    [("A golden retriever puppy sleeping on a blue blanket", "en"), ("红色跑车", "zh"),
     ("Tesla Model 3 白色 汽车", "zh"), ("赤いスポーツカー", "ja"), ("東京タワーから見た夜景", "ja"),
     ("빨간 스포츠카", "ko"), ("Ein Welpe schläft auf einer blauen Decke", "de"),
     ("Un chat regarde par la fenêtre un jour de pluie", "fr"), ("Кошка смотрит в окно", "ru"),
     ("قطة تنظر من النافذة في يوم ممطر", "ar")],
)  # fmt: skip
def test_languages(identifier: LanguageIdentifier, caption: str, language: str) -> None:
    found, confidence = identifier.identify(caption)
    assert found == language and 0.0 < confidence <= 1.0


def test_undetermined_and_cjk_confidence(identifier: LanguageIdentifier) -> None:
    for caption in ("", "   ", "12345", "!!! ???", "🙂🙂"):
        assert identifier.identify(caption) == (UNDETERMINED, 0.0)
    assert cjk_language("红色跑车") == ("zh", 1.0)
    language, share = cjk_language("Tesla 白色")
    assert language == "zh" and share == pytest.approx(2 / 7)
    assert cjk_language("a red car") is None
