"""Index parameters from the corpus size and the memory budget (pure)."""

from __future__ import annotations

import pytest

from pipeline.errors import UserInputError
from pipeline.index.params import (
    FLAT_MAX_VECTORS,
    HNSW_MAX_M,
    choose_params,
    ivfpq_bytes,
    nlist_for,
    parse_memory,
)

GIB = 2**30


def test_memory_sizes_are_parsed_in_binary_units() -> None:
    assert parse_memory("4G") == 4 * GIB
    assert parse_memory("512M") == 512 * 2**20
    assert parse_memory("1.5GB") == int(1.5 * GIB)
    assert parse_memory("1000") == 1000
    for bad in ("four", "0", "-1G", "4Q"):
        with pytest.raises(UserInputError, match="max-index-memory"):
            parse_memory(bad)


def test_small_corpora_get_the_exact_flat_index() -> None:
    params = choose_params(FLAT_MAX_VECTORS, 512, "auto", 4 * GIB)
    assert params.kind == "flat" and params.factory == "Flat"
    assert params.estimated_bytes == FLAT_MAX_VECTORS * 512 * 4


def test_larger_corpora_get_hnsw_while_it_fits_with_m_from_the_budget() -> None:
    params = choose_params(1_000_000, 512, "auto", 4 * GIB)
    assert params.kind == "hnsw" and params.hnsw_m == HNSW_MAX_M
    # M = (budget / 4N - dim) / 2: 4 GiB gives 280, capped at 32; 2.1 GiB gives 25.
    tight = choose_params(1_000_000, 512, "auto", int(2.1 * GIB))
    assert tight.kind == "hnsw" and 8 <= tight.hnsw_m < HNSW_MAX_M
    assert tight.estimated_bytes <= 2.1 * GIB


def test_past_the_hnsw_budget_ivfpq_codes_are_sized_by_the_budget() -> None:
    generous = choose_params(10_000_000, 512, "auto", 4 * GIB)
    assert generous.kind == "ivfpq" and generous.pq_m == 64 and generous.pq_bits == 8
    assert generous.nlist == 16384  # the power of two nearest 4 sqrt(10M) = 12649
    assert generous.factory == "IVF16384,PQ64x8np"
    tight = choose_params(10_000_000, 512, "auto", 300 * 2**20)
    assert tight.kind == "ivfpq" and tight.pq_m < 64
    assert ivfpq_bytes(10_000_000, 512, tight.nlist, tight.pq_m) <= 300 * 2**20
    with pytest.raises(UserInputError, match="raise --max-index-memory"):
        choose_params(10_000_000, 512, "auto", 50 * 2**20)


def test_nlist_follows_four_square_roots_and_keeps_39_training_points_a_list() -> None:
    assert nlist_for(1_000_000) == 4096  # 4 sqrt(1M) = 4000
    assert nlist_for(10_000) == 256  # 400 -> 512, but 10000 / 39 = 256
    assert nlist_for(80) == 2 and nlist_for(10) == 1


def test_forced_kinds_keep_the_chosen_numbers_and_refuse_what_cannot_fit() -> None:
    assert choose_params(100, 64, "hnsw", GIB).kind == "hnsw"
    small = choose_params(100, 64, "ivfpq", GIB)
    assert small.kind == "ivfpq" and small.nlist == 2 and small.train_size == 100
    assert 2**small.pq_bits <= small.train_size
    with pytest.raises(UserInputError, match="more than --max-index-memory"):
        choose_params(1_000_000, 512, "flat", GIB)
    with pytest.raises(UserInputError, match="--index-type"):
        choose_params(100, 64, "lsh", GIB)
