"""Shuffle keys, shard counts and the top-fraction arithmetic."""

from __future__ import annotations

from pipeline.build.selection import keep_count
from pipeline.build.shard_plan import plan_digest, shard_count, shuffle_key
from pipeline.dataset import final_shard_name


def test_shuffle_key_is_stable_and_depends_on_the_seed() -> None:
    uids = [f"{i:032x}" for i in range(200)]
    assert [shuffle_key(3, u) for u in uids] == [shuffle_key(3, u) for u in uids]
    order_3 = sorted(uids, key=lambda u: shuffle_key(3, u))
    order_4 = sorted(uids, key=lambda u: shuffle_key(4, u))
    assert order_3 != order_4 and order_3 != uids
    assert all(-(2**63) <= shuffle_key(0, u) < 2**63 for u in uids)
    # A published value: keys must not change between versions, or resumes would reshuffle.
    assert shuffle_key(0, "0" * 32) == -9059143853755733448


def test_shard_names_and_counts() -> None:
    assert final_shard_name(0) == "000000" and final_shard_name(123) == "000123"
    assert shard_count(1, 10) == 1 and shard_count(10, 10) == 1 and shard_count(11, 10) == 2
    assert plan_digest(["a", "b"]) != plan_digest(["b", "a"])


def test_keep_count_is_exact_decimal_arithmetic() -> None:
    # 0.3 * 10 is 3.0000000000000004 in binary floating point: a naive ceil would keep 4.
    assert keep_count(0.3, 10) == 3
    assert keep_count(0.25, 10) == 3  # ceil(2.5)
    assert keep_count(1.0, 7) == 7 and keep_count(0.01, 7) == 1 and keep_count(0.5, 0) == 0
