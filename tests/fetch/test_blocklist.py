"""--block-list files: the format, and each kind of entry."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.errors import ErrorClass, SampleError, UserInputError
from pipeline.fetch.blocklist import BlockList

SHA = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"


def load(tmp_path: Path, text: str, distance: int = 0) -> BlockList:
    path = tmp_path / "block.txt"
    path.write_text(text)
    return BlockList.load([str(path)], distance)


def blocked(check, *args) -> ErrorClass | None:
    try:
        check(*args)
    except SampleError as exc:
        return exc.error_class
    return None


def test_each_kind(tmp_path: Path) -> None:
    blocks = load(
        tmp_path,
        "# opt-out requests\n\n"
        "url:HTTP://Images.Example.org:80/a.jpg\n"
        "domain:*.blocked.test\n"
        "DOMAIN: Bücher.test\n"
        "domain:10.1.2.3\n"
        f"sha256:{SHA.upper()}\n"
        "phash:0xC3C3E1E0F0F8383C\n",
    )
    assert blocks.counts() == {"url": 1, "domain": 3, "sha256": 1, "phash": 1}
    url = blocks.check_url
    assert blocked(url, "http://images.example.org/a.jpg", "images.example.org") is ErrorClass.BLOCKED_URL
    assert blocked(url, "http://images.example.org/b.jpg", "images.example.org") is None
    assert blocked(url, "http://blocked.test/x.jpg", "blocked.test") is ErrorClass.BLOCKED_DOMAIN
    assert blocked(url, "http://a.b.blocked.test/x.jpg", "a.b.blocked.test") is ErrorClass.BLOCKED_DOMAIN
    assert blocked(url, "http://notblocked.test/x.jpg", "notblocked.test") is None
    assert blocked(url, "http://xn--bcher-kva.test/x.jpg", "xn--bcher-kva.test") is ErrorClass.BLOCKED_DOMAIN
    assert blocked(url, "http://10.1.2.3/x.jpg", "10.1.2.3") is ErrorClass.BLOCKED_DOMAIN
    assert blocked(url, "http://110.1.2.3/x.jpg", "110.1.2.3") is None  # no suffix match on addresses
    content = blocks.check_content
    assert blocked(content, SHA, 0) is ErrorClass.BLOCKED_SHA256
    assert blocked(content, "0" * 64, 0xC3C3E1E0F0F8383C) is ErrorClass.BLOCKED_PHASH
    assert blocked(content, "0" * 64, 0xC3C3E1E0F0F8383D) is None  # distance 0: exact only


def test_phash_distance(tmp_path: Path) -> None:
    blocks = load(tmp_path, "phash:c3c3e1e0f0f8383c\nphash:0000000000000000\n", distance=3)
    assert blocked(blocks.check_content, "0" * 64, 0xC3C3E1E0F0F8383C ^ 0b111) is ErrorClass.BLOCKED_PHASH
    assert blocked(blocks.check_content, "0" * 64, 0xC3C3E1E0F0F8383C ^ 0b1111) is None
    assert blocked(blocks.check_content, "0" * 64, 0b101) is ErrorClass.BLOCKED_PHASH
    with pytest.raises(SampleError, match="within 2 bits of --block-list entry 0000000000000000"):
        blocks.check_content("0" * 64, 0b101)


def test_several_files_and_an_empty_list(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("domain:a.test\n")
    (tmp_path / "b.txt").write_text("domain:b.test\n")
    blocks = BlockList.load([str(tmp_path / "a.txt"), str(tmp_path / "b.txt")])
    assert blocks.domains == {"a.test", "b.test"}
    assert not BlockList.load([]) and not BlockList()


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("example.org", "KIND:VALUE"),
        ("host:example.org", "KIND:VALUE"),
        ("url:ftp://example.org/a.jpg", "bad URL entry"),
        ("url:", "bad URL entry"),
        ("domain:exa mple.org", "bad domain entry"),
        ("sha256:1234", "64 hex digits"),
        ("phash:-12345", "16 hex digits"),
    ],
)
def test_a_bad_line_names_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    with pytest.raises(UserInputError, match=message) as info:
        load(tmp_path, f"# fine\ndomain:ok.test\n{line}\n")
    assert "block.txt:3" in str(info.value)


def test_an_unreadable_file_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserInputError, match="cannot read --block-list"):
        BlockList.load([str(tmp_path / "missing.txt")])
