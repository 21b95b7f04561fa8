"""The dataset directory shared by all jobs (``--dataset DIR``, any fsspec URL): its one layout.

Every directory, file and marker name of a dataset is written here once, and every stage, the
report and the benchmarks reach them through the typed accessors below (never by joining names
themselves)::

    DIR/
      _input/   00000.parquet ... _manifest.json            the URL list cut into input shards
                00000_dups.json ... _duplicates.json        later occurrences of a pair or URL
      raw/      00000.tar 00000.parquet 00000_stats.json    download outputs, one set per shard
                _options.json _summary.json sizes.json
      export/   parquet/00000.parquet 00000_stats.json      --output-format parquet|files: a copy
                files/00000/KEY.jpg ... 00000.parquet        of the raw shards in img2dataset's layout
      scores/   00000.parquet 00000_stats.json _summary.json        CLIP scores
                embeddings/00000_image.npy 00000_text.npy            with --save-embeddings
                probes/00000.parquet 00000_stats.json                with --probe (probe scores)
      dedup/    matches.parquet _summary.json                        samples to drop
                benchmark_hashes.parquet _benchmark_sources.json     benchmark hashes (reused)
                centre_hashes/00000.parquet 00000_stats.json         corpus centre pHashes (cache)
                audit/index.html audit/page_000.png ...              benchmark matches, for a person
      final/    000000.tar 000000_stats.json ... sizes.json manifest.json   training shards
                _selection/00000.parquet _options.json _summary.json         every sample's fate
      index/    image.faiss image_uids.parquet image_stats.json          kNN index of the embeddings
                text.faiss text_uids.parquet text_stats.json             with --text
                parts/image/_trained.faiss 00000.faiss 00000_stats.json  while building (then removed)
                _options.json _summary.json
      report/   index.html figures/*.png

Tables are read through :class:`TableFile`, which checks them against their contract in
``schemas/``; tar members through :class:`~pipeline.shards.tar_reader.TarStream`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.runner import ShardOutput, marker_token
from pipeline.shards.tar_reader import SampleRange, TarStream, read_range
from pipeline.storage import Storage
from schemas.contract import check_schema
from schemas.dedup import (
    BENCHMARK_EMBEDDINGS_SCHEMA,
    BENCHMARK_HASHES_SCHEMA,
    CENTRE_HASHES_SCHEMA,
    MATCHES_SCHEMA,
)
from schemas.index import INDEX_UIDS_SCHEMA
from schemas.probes import PROBES_SCHEMA
from schemas.raw_shard import RAW_SHARD_SCHEMA, STATUS_SUCCESS
from schemas.scores import SCORES_SCHEMA
from schemas.selection import SELECTION_SCHEMA
from schemas.url_list import URL_LIST_SCHEMA

INPUT_DIR = "_input"
RAW_DIR = "raw"
SCORES_DIR = "scores"
EMBEDDINGS_DIR = "embeddings"
PROBES_DIR = "probes"
DEDUP_DIR = "dedup"
CENTRE_DIR = "centre_hashes"
AUDIT_DIR = "audit"
FINAL_DIR = "final"
SELECTION_DIR = "_selection"
REPORT_DIR = "report"
INDEX_DIR = "index"
INDEX_PARTS_DIR = "parts"
EXPORT_DIR = "export"
SIZES_FILE = "sizes.json"

OPTIONS_FILE = "_options.json"
SUMMARY_FILE = "_summary.json"
MARKER_SUFFIX = "_stats.json"
IMAGE_EXTS = ("jpg", "webp", "png")


def shard_name(index: int) -> str:
    """``00042``: input, raw, score and selection shards (five digits)."""
    return f"{index:05d}"


def final_shard_name(index: int) -> str:
    """``000042``: final shards, six digits so ``{000000..000123}.tar`` lists them."""
    return f"{index:06d}"


def shard_indices(names: Iterable[str], suffix: str) -> list[int]:
    """Indices of the names ``NNNNN<suffix>`` (digits only before the suffix), sorted."""
    found = []
    for name in names:
        stem = name[: -len(suffix)] if name.endswith(suffix) else ""
        if stem.isdigit():
            found.append(int(stem))
    return sorted(found)


@dataclass(frozen=True)
class TableFile:
    """One Parquet file of the dataset and the contract it follows."""

    storage: Storage
    parts: tuple[str, ...]
    schema: pa.Schema

    @property
    def path(self) -> str:
        return self.storage.path(*self.parts)

    def exists(self) -> bool:
        return self.storage.exists(*self.parts)

    def read(self, columns: list[str] | None = None) -> pa.Table:
        """The table (or some of its columns), after checking the file's schema."""
        with self.storage.open(*self.parts) as handle:
            # ParquetFile, not read_table: read_table imports pyarrow.dataset and with it pandas,
            # about 0.5 s of CPU in every fresh Python worker.
            parquet = pq.ParquetFile(handle)
            check_schema(parquet.schema_arrow, self.schema, self.storage.display(*self.parts))
            return parquet.read(columns=columns)

    def check(self) -> pq.ParquetFile:
        """Check the schema only (reads the footer); returns the open file's metadata holder."""
        with self.storage.open(*self.parts) as handle:
            parquet = pq.ParquetFile(handle)
            check_schema(parquet.schema_arrow, self.schema, self.storage.display(*self.parts))
            return parquet

    def row_groups(self) -> int:
        return self.check().num_row_groups

    def read_row_group(self, group: int, columns: list[str]) -> pa.Table:
        with self.storage.open(*self.parts) as handle:
            return pq.ParquetFile(handle).read_row_group(group, columns=columns)


@dataclass(frozen=True)
class TarFile:
    """One tar of the dataset: streamed members, an index, ranged reads."""

    storage: Storage
    parts: tuple[str, ...]

    @property
    def path(self) -> str:
        return self.storage.path(*self.parts)

    def exists(self) -> bool:
        return self.storage.exists(*self.parts)

    def samples(self, exts: Callable[[str], bool] | None = None) -> Iterator[Any]:
        """Every sample (members grouped by key), streamed in tar order."""
        with self.storage.open(*self.parts) as handle:
            yield from TarStream(handle, self.storage.display(*self.parts)).samples(exts)

    def members(
        self, exts: tuple[str, ...], keys: set[str] | None = None
    ) -> Iterator[tuple[str, str, bytes]]:
        """``(key, ext, bytes)`` of the members with an extension in ``exts`` (and a key in ``keys``).

        With ``keys``, the data of other samples is skipped by seeking instead of being read.
        """

        def wanted(key: str, ext: str) -> bool:
            return ext in exts and (keys is None or key in keys)

        with self.storage.open(*self.parts) as handle:
            stream = TarStream(handle, self.storage.display(*self.parts), seek=keys is not None)
            for member, data in stream.members(wanted):
                if data is not None:
                    yield member.key, member.ext, data

    def index(self) -> dict[str, SampleRange]:
        with self.storage.open(*self.parts) as handle:
            return TarStream(handle, self.storage.display(*self.parts), seek=True).index()

    def open(self) -> Any:
        return self.storage.open(*self.parts)

    def read_range(self, handle: Any, sample: SampleRange) -> dict[str, bytes]:
        return read_range(handle, sample, self.storage.display(*self.parts))


class Shard:
    """One numbered unit of a stage folder: its files and its marker."""

    def __init__(self, storage: Storage, folder: str, index: int, name: str) -> None:
        self.storage = storage
        self.folder = folder
        self.index = index
        self.name = name

    def part(self, suffix: str) -> tuple[str, str]:
        return (self.folder, f"{self.name}{suffix}")

    @property
    def marker(self) -> tuple[str, str]:
        return self.part(MARKER_SUFFIX)

    def is_complete(self) -> bool:
        return self.storage.exists(*self.marker)

    def stats(self) -> dict[str, Any]:
        """The marker's content (the shard must be complete)."""
        return self.storage.read_json(*self.marker)

    def token(self) -> str:
        """Identity of the shard's committed content (changes when the shard is redone)."""
        return marker_token(self.storage, self.marker)


class InputShard(Shard):
    @property
    def table_file(self) -> TableFile:
        return TableFile(self.storage, self.part(".parquet"), URL_LIST_SCHEMA)

    @property
    def duplicates_file(self) -> tuple[str, str]:
        return self.part("_dups.json")


class RawShard(Shard):
    """``raw/NNNNN.tar``, ``.parquet`` and ``_stats.json``: one download shard."""

    @property
    def table_file(self) -> TableFile:
        return TableFile(self.storage, self.part(".parquet"), RAW_SHARD_SCHEMA)

    @property
    def tar(self) -> TarFile:
        return TarFile(self.storage, self.part(".tar"))

    @property
    def output(self) -> ShardOutput:
        return ShardOutput(files=(self.part(".tar"), self.part(".parquet")), marker=self.marker)

    def table(self, columns: list[str] | None = None) -> pa.Table:
        return self.table_file.read(columns)

    def successes(self, columns: list[str]) -> list[dict[str, Any]]:
        """Rows (the given columns) of the samples stored in the tar."""
        wanted = columns if "status" in columns else [*columns, "status"]
        rows = self.table(wanted).to_pylist()
        keep = [r for r in rows if r["status"] == STATUS_SUCCESS]
        if "status" not in columns:
            for r in keep:
                del r["status"]
        return keep

    def images(
        self, ext: str | tuple[str, ...] = IMAGE_EXTS, uids: set[str] | None = None
    ) -> Iterator[tuple[str, bytes]]:
        """``(uid, stored image bytes)`` in tar order (only ``uids`` when given)."""
        exts = (ext,) if isinstance(ext, str) else ext
        for key, _, data in self.tar.members(exts, uids):
            yield key, data


class ScoresShard(Shard):
    """``scores/NNNNN.parquet`` and its marker; embeddings when saved."""

    @property
    def table_file(self) -> TableFile:
        return TableFile(self.storage, self.part(".parquet"), SCORES_SCHEMA)

    def embeddings_file(self, kind: str) -> tuple[str, str, str]:
        return (self.folder, EMBEDDINGS_DIR, f"{self.name}_{kind}.npy")

    def output(self, embeddings: bool) -> ShardOutput:
        files = (self.embeddings_file("image"), self.embeddings_file("text")) if embeddings else ()
        return ShardOutput(files=(*files, self.part(".parquet")), marker=self.marker)

    def table(self, columns: list[str] | None = None) -> pa.Table:
        return self.table_file.read(columns)

    # Probe scores (issue 18, probes): their own unit next to the scores, with their own marker,
    # so probes can be added to scores committed earlier without encoding the images again.
    @property
    def probes_folder(self) -> str:
        return f"{self.folder}/{PROBES_DIR}"

    @property
    def probes_file(self) -> TableFile:
        """``scores/probes/NNNNN.parquet``: the probes' scores of this shard (long table)."""
        return TableFile(self.storage, (self.probes_folder, f"{self.name}.parquet"), PROBES_SCHEMA)

    @property
    def probes_marker(self) -> tuple[str, str]:
        return (self.probes_folder, f"{self.name}{MARKER_SUFFIX}")

    @property
    def probes_output(self) -> ShardOutput:
        return ShardOutput(files=(self.probes_file.parts,), marker=self.probes_marker)

    def probes_complete(self) -> bool:
        return self.storage.exists(*self.probes_marker)

    def probes_stats(self) -> dict[str, Any]:
        """The probes' marker: probe names and digests, the score shard token they were made from."""
        return self.storage.read_json(*self.probes_marker)

    def has_embeddings(self, kind: str = "image") -> bool:
        return self.storage.exists(*self.embeddings_file(kind))

    def embeddings(self, kind: str = "image") -> Any:
        """The saved embeddings (float16, one row per row of the scores table), read without pickle."""
        import io

        import numpy as np

        return np.load(io.BytesIO(self.storage.read_bytes(*self.embeddings_file(kind))), allow_pickle=False)


class CentreHashesShard(Shard):
    """``dedup/centre_hashes/NNNNN.parquet``: centre pHashes of one raw shard's images (cache)."""

    @property
    def table_file(self) -> TableFile:
        return TableFile(self.storage, self.part(".parquet"), CENTRE_HASHES_SCHEMA)

    @property
    def output(self) -> ShardOutput:
        return ShardOutput(files=(self.part(".parquet"),), marker=self.marker)


class FinalShard(Shard):
    """``final/NNNNNN.tar`` and its marker."""

    @property
    def tar_name(self) -> str:
        return f"{self.name}.tar"

    @property
    def tar(self) -> TarFile:
        return TarFile(self.storage, self.part(".tar"))

    @property
    def output(self) -> ShardOutput:
        return ShardOutput(files=(self.part(".tar"),), marker=self.marker)


class StageFolder:
    """A stage's folder: numbered shards, ``_options.json`` and ``_summary.json``."""

    folder: str = ""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    @property
    def path(self) -> str:
        return self.storage.path(self.folder)

    def display(self, *parts: str) -> str:
        return self.storage.display(self.folder, *parts)

    def exists(self) -> bool:
        return self.storage.exists(self.folder)

    def file(self, name: str) -> tuple[str, str]:
        return (self.folder, name)

    @property
    def options_file(self) -> tuple[str, str]:
        return self.file(OPTIONS_FILE)

    @property
    def summary_file(self) -> tuple[str, str]:
        return self.file(SUMMARY_FILE)

    def summary(self) -> dict[str, Any] | None:
        return self.storage.read_json_if_exists(*self.summary_file)

    def write_summary(self, summary: dict[str, Any]) -> None:
        self.storage.write_json(summary, *self.summary_file)

    def makedirs(self) -> None:
        self.storage.makedirs(self.folder)

    def remove(self) -> None:
        self.storage.remove(self.folder)

    def remove_temporaries(self) -> int:
        return self.storage.remove_temporaries(self.folder)

    def complete_indices(self) -> list[int]:
        """Indices of the shards with a marker, in order."""
        return shard_indices(self.storage.names(self.folder), MARKER_SUFFIX)


class InputFolder(StageFolder):
    folder = INPUT_DIR
    manifest_file = (INPUT_DIR, "_manifest.json")
    duplicates_marker = (INPUT_DIR, "_duplicates.json")
    # Input shards holding each host found in more than one (the job-wide per-host budget).
    host_spread_file = (INPUT_DIR, "_host_spread.json")

    def shard(self, index: int) -> InputShard:
        return InputShard(self.storage, self.folder, index, shard_name(index))

    def manifest(self) -> dict[str, Any] | None:
        return self.storage.read_json_if_exists(*self.manifest_file)


class RawFolder(StageFolder):
    folder = RAW_DIR

    def shard(self, index: int) -> RawShard:
        return RawShard(self.storage, self.folder, index, shard_name(index))

    def complete_shards(self) -> list[RawShard]:
        return [self.shard(i) for i in self.complete_indices()]

    def download_options(self) -> dict[str, Any] | None:
        """The options that shaped the stored samples (``raw/_options.json``)."""
        return self.storage.read_json_if_exists(*self.options_file)

    @property
    def sizes_file(self) -> tuple[str, str]:
        """``raw/sizes.json``: successes per raw tar, as WebDataset loaders read it."""
        return self.file(SIZES_FILE)


class ExportShard(Shard):
    """One raw shard's copy in img2dataset's layout: ``NNNNN.parquet`` (with the images for the
    parquet format), the ``NNNNN/`` folder of files for the files format, and its marker."""

    @property
    def parquet(self) -> tuple[str, str]:
        return self.part(".parquet")

    @property
    def files_folder(self) -> str:
        return f"{self.folder}/{self.name}"

    @property
    def output(self) -> ShardOutput:
        return ShardOutput(files=(self.parquet,), marker=self.marker)


class ExportFolder(StageFolder):
    """``export/FORMAT/``: ``--output-format parquet|files``."""

    def __init__(self, storage: Storage, output_format: str) -> None:
        super().__init__(storage)
        self.folder = f"{EXPORT_DIR}/{output_format}"

    def shard(self, index: int) -> ExportShard:
        return ExportShard(self.storage, self.folder, index, shard_name(index))


class ScoresFolder(StageFolder):
    folder = SCORES_DIR

    def shard(self, index: int) -> ScoresShard:
        return ScoresShard(self.storage, self.folder, index, shard_name(index))

    def remove_temporaries(self) -> int:
        removed = self.storage.remove_temporaries(self.folder) + self.storage.remove_temporaries(
            self.folder, EMBEDDINGS_DIR
        )
        if self.storage.exists(self.folder, PROBES_DIR):
            removed += self.storage.remove_temporaries(self.folder, PROBES_DIR)
        return removed

    def table_indices(self) -> list[int]:
        """Indices of the ``NNNNN.parquet`` files present (complete or not)."""
        return shard_indices(self.storage.names(self.folder), ".parquet")


class DedupFolder(StageFolder):
    folder = DEDUP_DIR

    @property
    def matches(self) -> TableFile:
        return TableFile(self.storage, self.file("matches.parquet"), MATCHES_SCHEMA)

    @property
    def benchmark_hashes(self) -> TableFile:
        return TableFile(self.storage, self.file("benchmark_hashes.parquet"), BENCHMARK_HASHES_SCHEMA)

    @property
    def benchmark_output(self) -> ShardOutput:
        return ShardOutput(files=(self.benchmark_hashes.parts,), marker=self.file("_benchmark_sources.json"))

    @property
    def benchmark_embeddings(self) -> TableFile:
        return TableFile(self.storage, self.file("benchmark_embeddings.parquet"), BENCHMARK_EMBEDDINGS_SCHEMA)

    @property
    def benchmark_embeddings_output(self) -> ShardOutput:
        return ShardOutput(
            files=(self.benchmark_embeddings.parts,), marker=self.file("_benchmark_embeddings.json")
        )

    @property
    def matches_output(self) -> ShardOutput:
        return ShardOutput(files=(self.matches.parts,), marker=self.summary_file)

    def centre(self, index: int) -> CentreHashesShard:
        return CentreHashesShard(self.storage, self.centre_folder, index, shard_name(index))

    @property
    def centre_folder(self) -> str:
        return f"{self.folder}/{CENTRE_DIR}"

    @property
    def audit_folder(self) -> str:
        return f"{self.folder}/{AUDIT_DIR}"

    def audit_pages(self) -> list[str]:
        """File system paths of the audit grid's PNG pages, in order."""
        names = self.storage.names(self.audit_folder)
        return [
            self.storage.path(self.audit_folder, n)
            for n in names
            if n.startswith("page_") and n.endswith(".png")
        ]


class FinalFolder(StageFolder):
    folder = FINAL_DIR
    sizes_file = (FINAL_DIR, "sizes.json")
    manifest_file = (FINAL_DIR, "manifest.json")
    selection_folder = f"{FINAL_DIR}/{SELECTION_DIR}"

    def shard(self, index: int) -> FinalShard:
        return FinalShard(self.storage, self.folder, index, final_shard_name(index))

    def selection(self, raw_index: int) -> TableFile:
        return TableFile(
            self.storage, (self.selection_folder, f"{shard_name(raw_index)}.parquet"), SELECTION_SCHEMA
        )

    def selection_indices(self) -> list[int]:
        return shard_indices(self.storage.names(self.selection_folder), ".parquet")

    def manifest(self) -> dict[str, Any] | None:
        return self.storage.read_json_if_exists(*self.manifest_file)

    def pattern(self, shards: int) -> str:
        """The brace pattern naming every final shard, for ``--train-data``/``--shards``."""
        return f"{self.display()}/{{{final_shard_name(0)}..{final_shard_name(shards - 1)}}}.tar"


class IndexPart(Shard):
    """``index/parts/KIND/NNNNN.faiss``: the vectors of one score shard, added while building."""

    @property
    def output(self) -> ShardOutput:
        return ShardOutput(files=(self.part(".faiss"),), marker=self.marker)


class IndexFolder(StageFolder):
    """``index/``: one kNN index per kind of embedding (``image``, ``text``) and its uids."""

    folder = INDEX_DIR

    def index_file(self, kind: str) -> tuple[str, str]:
        return self.file(f"{kind}.faiss")

    def uids(self, kind: str) -> TableFile:
        return TableFile(self.storage, self.file(f"{kind}_uids.parquet"), INDEX_UIDS_SCHEMA)

    def marker(self, kind: str) -> tuple[str, str]:
        """Written last: the index of ``kind`` is complete (its parameters, ntotal, recall)."""
        return self.file(f"{kind}{MARKER_SUFFIX}")

    def output(self, kind: str) -> ShardOutput:
        return ShardOutput(files=(self.index_file(kind), self.uids(kind).parts), marker=self.marker(kind))

    def parts_folder(self, kind: str) -> str:
        return f"{self.folder}/{INDEX_PARTS_DIR}/{kind}"

    def trained_output(self, kind: str) -> ShardOutput:
        """The empty index trained on the driver (IVF-PQ quantizer and codebooks) every part copies."""
        folder = self.parts_folder(kind)
        return ShardOutput(files=((folder, "_trained.faiss"),), marker=(folder, f"_trained{MARKER_SUFFIX}"))

    def part(self, kind: str, shard: int) -> IndexPart:
        return IndexPart(self.storage, self.parts_folder(kind), shard, shard_name(shard))

    def remove_parts(self, kind: str) -> None:
        if self.storage.exists(self.parts_folder(kind)):
            self.storage.remove(self.parts_folder(kind))

    def remove_temporaries(self) -> int:
        removed = self.storage.remove_temporaries(self.folder)
        for kind in ("image", "text"):
            if self.storage.exists(self.parts_folder(kind)):
                removed += self.storage.remove_temporaries(self.parts_folder(kind))
        return removed


class Dataset:
    """One dataset root and the folders of every stage."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.storage = Storage(url)

    def __getstate__(self) -> dict[str, Any]:
        return {"url": self.url}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["url"])  # type: ignore[misc]

    def display(self, *parts: str) -> str:
        return self.storage.display(*parts)

    def exists(self) -> bool:
        return self.storage.isdir()

    @cached_property
    def input(self) -> InputFolder:
        return InputFolder(self.storage)

    @cached_property
    def raw(self) -> RawFolder:
        return RawFolder(self.storage)

    @cached_property
    def scores(self) -> ScoresFolder:
        return ScoresFolder(self.storage)

    @cached_property
    def dedup(self) -> DedupFolder:
        return DedupFolder(self.storage)

    @cached_property
    def final(self) -> FinalFolder:
        return FinalFolder(self.storage)

    @cached_property
    def index(self) -> IndexFolder:
        return IndexFolder(self.storage)

    def export(self, output_format: str) -> ExportFolder:
        """``export/FORMAT/``: the raw shards in img2dataset's ``parquet`` or ``files`` layout."""
        return ExportFolder(self.storage, output_format)

    @property
    def report_folder(self) -> str:
        return REPORT_DIR
