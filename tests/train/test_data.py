"""The training stream: rank/worker splits, shuffling, resampling, exact positions, damage."""

from __future__ import annotations

import io
import itertools
import tarfile
from pathlib import Path

import open_clip
import pytest
import torch
from torch.utils.data import DataLoader

from pipeline.errors import UserInputError
from pipeline.score.model import register_configs
from pipeline.train.data import Position, StreamConfig, TrainStream, check_layout, epoch_shards
from pipeline.train.shardlist import expand_shards
from pipeline.train.tario import Counters, read_shard
from testkit.scene_shards import write_scene_shards as write_shards


@pytest.fixture(scope="module")
def transforms():
    register_configs()
    _, preprocess_train, _ = open_clip.create_model_and_transforms("corpusforge-tiny")
    return preprocess_train, open_clip.get_tokenizer("corpusforge-tiny")


def urls_of(folder: Path) -> tuple[str, ...]:
    return tuple(str(p) for p in sorted(folder.glob("*.tar")))


def keys_of(stream: TrainStream, batches: int) -> list[str]:
    return [k for b in itertools.islice(iter(stream), batches) for k in b["keys"]]


def test_ranks_and_workers_read_disjoint_shards_covering_the_epoch(shards: Path) -> None:
    config = StreamConfig(urls_of(shards), batch_size=8, seed=3)
    for epoch in range(3):
        parts = [epoch_shards(config, epoch, c, 4) for c in range(4)]
        assert sorted(u for part in parts for u in part) == sorted(config.urls)
    assert epoch_shards(config, 0, 0, 2) != epoch_shards(config, 1, 0, 2) or epoch_shards(
        config, 0, 1, 2
    ) != epoch_shards(config, 1, 1, 2)
    assert epoch_shards(StreamConfig(config.urls, 8, shard_shuffle=False), 0, 1, 2) == [
        config.urls[1],
        config.urls[3],
    ]


def test_too_few_shards_for_the_workers_is_refused_unless_resampled(shards: Path) -> None:
    config = StreamConfig(urls_of(shards), batch_size=8)
    with pytest.raises(UserInputError, match="4 shards cannot be split over 2 process"):
        check_layout(config, world_size=2, workers=3)
    check_layout(StreamConfig(config.urls, 8, resampled=True), world_size=2, workers=3)


def test_two_ranks_see_disjoint_samples_and_one_epoch_is_every_sample_once(shards: Path, transforms) -> None:
    preprocess, tokenizer = transforms
    config = StreamConfig(urls_of(shards), batch_size=8, seed=1, shuffle_buffer=20)
    per_rank = [keys_of(TrainStream(config, preprocess, tokenizer, rank, 2), 12) for rank in range(2)]
    assert not set(per_rank[0]) & set(per_rank[1])
    assert len(set(per_rank[0]) | set(per_rank[1])) == 192 == len(per_rank[0]) + len(per_rank[1])


def test_shuffle_buffer_mixes_shards_and_is_deterministic(shards: Path, transforms) -> None:
    preprocess, tokenizer = transforms
    plain = StreamConfig(urls_of(shards), batch_size=16, seed=0, shard_shuffle=False, shuffle_buffer=0)
    mixed = StreamConfig(urls_of(shards), batch_size=16, seed=0, shard_shuffle=False, shuffle_buffer=50)
    in_order = keys_of(TrainStream(plain, preprocess, tokenizer), 12)
    assert in_order == sorted(in_order)
    first = keys_of(TrainStream(mixed, preprocess, tokenizer), 12)
    assert first != in_order and sorted(first) == sorted(in_order)
    assert first == keys_of(TrainStream(mixed, preprocess, tokenizer), 12)


def test_resampled_mode_draws_shards_with_replacement(shards: Path, transforms) -> None:
    preprocess, tokenizer = transforms
    config = StreamConfig(urls_of(shards), batch_size=16, seed=5, resampled=True, shuffle_buffer=0)
    drawn = [u for e in range(6) for u in epoch_shards(config, e, 0, 1)]
    assert len(drawn) == 24 and len(set(drawn)) < len(drawn)
    keys = keys_of(TrainStream(config, preprocess, tokenizer), 12)
    assert len(keys) == 192 and len(set(keys)) < 192  # repeats: sampled with replacement


def test_a_resumed_loader_continues_the_exact_batch_sequence(shards: Path, transforms) -> None:
    preprocess, tokenizer = transforms
    config = StreamConfig(urls_of(shards), batch_size=8, seed=2, shuffle_buffer=30)

    def loader(start=None, offset=0):
        stream = TrainStream(config, preprocess, tokenizer, workers=2, start=start, worker_offset=offset)
        return DataLoader(stream, batch_size=None, num_workers=2)

    straight = list(itertools.islice(iter(loader()), 17))
    done = 7  # odd: the resumed loader must start with the other worker
    positions = {b["worker"]: Position.from_dict(b["position"]) for b in straight[:done]}
    resumed = list(itertools.islice(iter(loader(positions, done % 2)), 10))
    for a, b in zip(straight[done:], resumed, strict=True):
        assert a["keys"] == b["keys"]
        assert torch.equal(a["images"], b["images"])  # same random crops too
        assert torch.equal(a["texts"], b["texts"])


def damaged_tar(path: Path, good: bytes, text: bytes) -> None:
    with tarfile.open(path, "w") as tar:
        for name, data in [
            ("ok1.jpg", good),
            ("ok1.txt", text),
            ("broken.jpg", b"\xff\xd8\xff not a jpeg"),
            ("broken.txt", text),
            ("nocaption.jpg", good),
            ("../evil.jpg", good),
            ("../evil.txt", text),
            ("dir/x.jpg", good),
            ("dots..jpg", good),
            ("badutf8.jpg", good),
            ("badutf8.txt", b"\xff\xfe\xfa"),
            ("ok2.jpg", good),
            ("ok2.txt", text),
        ]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def sample_bytes(shards: Path) -> tuple[bytes, bytes]:
    counters = Counters()
    sample = next(read_shard(str(shards / "000000.tar"), counters))
    return sample.image, sample.text


def test_damaged_samples_and_unsafe_keys_are_skipped_and_counted(
    shards: Path, tmp_path: Path, transforms
) -> None:
    preprocess, tokenizer = transforms
    good, text = sample_bytes(shards)
    damaged_tar(tmp_path / "bad.tar", good, text)
    counters = Counters()
    keys = [s.key for s in read_shard(str(tmp_path / "bad.tar"), counters)]
    assert keys == ["ok1", "broken", "badutf8", "ok2"]  # decodable is checked later
    assert counters.corrupt_samples == 4  # nocaption, ../evil, dir/x, dots..
    config = StreamConfig((str(tmp_path / "bad.tar"),), batch_size=2, shuffle_buffer=0)
    batch = next(iter(TrainStream(config, preprocess, tokenizer)))
    assert batch["keys"] == ["ok1", "ok2"]
    assert batch["position"]["corrupt_samples"] == 6 and batch["position"]["corrupt_shards"] == 0


@pytest.mark.parametrize("where", ["inside_member", "between_members", "inside_header"])
def test_a_truncated_tar_keeps_the_samples_before_the_damage(
    shards: Path, tmp_path: Path, where: str
) -> None:
    data = (shards / "000001.tar").read_bytes()
    with tarfile.open(shards / "000001.tar") as tar:
        member = tar.getmember("s0x0001x00020.jpg")  # the 21st sample's first member
    cut = {
        "inside_member": member.offset_data + 10,
        "between_members": member.offset,
        "inside_header": member.offset + 100,
    }[where]
    (tmp_path / "cut.tar").write_bytes(data[:cut])
    counters = Counters()
    kept = [s.key for s in read_shard(str(tmp_path / "cut.tar"), counters)]
    assert kept == [f"s0x0001x{i:05d}" for i in range(20)]
    assert counters.corrupt_shards == 1


def test_a_file_that_is_no_tar_is_one_corrupt_shard(tmp_path: Path) -> None:
    (tmp_path / "garbage.tar").write_bytes(b"this is not a tar file at all" * 40)
    counters = Counters()
    assert list(read_shard(str(tmp_path / "garbage.tar"), counters)) == []
    assert counters.corrupt_shards == 1


def test_no_usable_sample_fails_fast_with_the_counts(tmp_path: Path, transforms) -> None:
    preprocess, tokenizer = transforms
    paths = []
    for i in range(2):
        path = tmp_path / f"{i}.tar"
        with tarfile.open(path, "w") as tar:
            for name, payload in [(f"k{i}.jpg", b"not an image"), (f"k{i}.txt", b"caption")]:
                info = tarfile.TarInfo(name)
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
        paths.append(str(path))
    (tmp_path / "empty.tar").write_bytes(b"")
    config = StreamConfig((*paths, str(tmp_path / "empty.tar")), batch_size=4)
    with pytest.raises(
        UserInputError, match=r"no usable sample .* 2 corrupt samples and 1 unreadable shards"
    ):
        next(iter(TrainStream(config, preprocess, tokenizer)))


def test_shards_are_read_through_fsspec_urls(shards: Path, transforms) -> None:
    preprocess, tokenizer = transforms
    urls = tuple(f"file://{u}" for u in expand_shards(f"{shards}/{{000000..000001}}.tar"))
    keys = keys_of(TrainStream(StreamConfig(urls, 16, shuffle_buffer=0), preprocess, tokenizer), 6)
    assert len(set(keys)) == 96


def test_tiny_shards_from_the_fixture_writer_roundtrip(tmp_path: Path) -> None:
    paths = write_shards(tmp_path, shards=1, per_shard=3, seed=4)
    counters = Counters()
    samples = list(read_shard(str(paths[0]), counters))
    assert [s.key for s in samples] == ["s4x0000x00000", "s4x0000x00001", "s4x0000x00002"]
    assert counters == Counters()


def test_jpeg_draft_decodes_at_a_reduced_scale_but_never_below_the_asked_side() -> None:
    import io as io_

    from PIL import Image

    from pipeline.train.data import decode_image

    buffer = io_.BytesIO()
    Image.new("RGB", (256, 200), (200, 30, 30)).save(buffer, format="JPEG")
    assert decode_image(buffer.getvalue()).size == (256, 200)
    assert decode_image(buffer.getvalue(), min_side=100).size == (128, 100)
    assert decode_image(buffer.getvalue(), min_side=40).size == (64, 50)
    png = io_.BytesIO()
    Image.new("RGB", (256, 200)).save(png, format="PNG")
    assert decode_image(png.getvalue(), min_side=40).size == (256, 200)  # only JPEGs have a draft mode
