"""Shard lists as users write them: brace patterns, '::' lists, sizes.json, missing shards."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.errors import UserInputError
from pipeline.train.shardlist import check_shards_exist, expand_shards, shard_sizes


def test_brace_ranges_keep_zero_padding_and_lists_join_with_double_colon() -> None:
    assert expand_shards("d/final/{000008..000011}.tar") == [
        "d/final/000008.tar",
        "d/final/000009.tar",
        "d/final/000010.tar",
        "d/final/000011.tar",
    ]
    assert expand_shards("a/{x,y}-{1..2}.tar::s3://b/c.tar") == [
        "a/x-1.tar",
        "a/x-2.tar",
        "a/y-1.tar",
        "a/y-2.tar",
        "s3://b/c.tar",
    ]
    assert expand_shards("{a,{b,c}d}") == ["a", "bd", "cd"]


@pytest.mark.parametrize("spec", ["d/{000..001.tar", " :: "])
def test_bad_patterns_are_user_errors(spec: str) -> None:
    with pytest.raises(UserInputError):
        expand_shards(spec)


def test_missing_shards_are_named(shards: Path) -> None:
    urls = expand_shards(f"{shards}/{{000000..000005}}.tar")
    with pytest.raises(UserInputError, match=r"2 of 6 shards not found: .*000004\.tar, .*000005\.tar"):
        check_shards_exist(urls)
    check_shards_exist(urls[:4])


def test_sizes_json_next_to_the_shards_gives_counts(shards: Path) -> None:
    urls = expand_shards(f"{shards}/{{000000..000003}}.tar")
    assert shard_sizes(urls) == {url: 48 for url in urls}
