"""What build_shards reads (raw/, scores/, dedup/), checked on the driver before Spark starts.

Also computes the identity of those inputs: a resumed build must read exactly what the first
run read, or the shards it keeps and the shards it writes would describe two different corpora.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from typing import Any

from pipeline.build.options import BuildOptions
from pipeline.build.uid_lists import file_digest
from pipeline.dataset import Dataset, TableFile
from pipeline.errors import UserInputError
from pipeline.runner import marker_token
from pipeline.score.shard_scorer import current_scores
from schemas.contract import SchemaMismatch, schema_version
from schemas.dedup import MATCHES_SCHEMA, REASONS
from schemas.raw_shard import RAW_SHARD_SCHEMA
from schemas.scores import SCORES_SCHEMA

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BuildInputs:
    """The upstream outputs one build reads; picklable, shipped to executors."""

    raw_shards: tuple[int, ...]
    # Raw shards with current scores (their score marker names the raw shard's present content).
    scored_shards: tuple[int, ...]
    score_model: str | None
    score_pretrained: str | None
    has_matches: bool
    matches_row_groups: int
    fingerprint: dict[str, Any]
    # The uid lists given (include_uids, exclude_uids) -> {"sha256": digest of the file's bytes}.
    uid_lists: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def unscored_shards(self) -> tuple[int, ...]:
        return tuple(sorted(set(self.raw_shards) - set(self.scored_shards)))


def discover_inputs(options: BuildOptions) -> BuildInputs:
    """Find and check raw/, scores/ and dedup/; raise UserInputError naming what is wrong.

    Missing scores are an error only when a score rule is asked; missing dedup output is an
    error with ``--require-dedup`` and a logged warning otherwise.
    """
    dataset = Dataset(options.dataset)
    shards = dataset.raw.complete_indices()
    if not shards:
        raise UserInputError(
            f"{dataset.raw.display()} has no complete raw shards: run jobs/download.py first"
        )
    _check_download_finished(dataset, shards)
    _check_parquet(dataset.raw.shard(shards[0]).table_file)
    scored = [s for s in shards if current_scores(dataset, s) is not None]
    if options.score_filter or options.languages is not None:
        flag = (
            "--languages"  # the language of each caption is in scores/ (issue 18)
            if not options.score_filter
            else "--min-clip-score"
            if options.min_clip_score is not None
            else "--top-fraction"
        )
        if not dataset.scores.exists():
            raise UserInputError(
                f"{flag} needs CLIP scores but {dataset.scores.display()} does not exist: "
                "run jobs/score.py first, or build without a score rule"
            )
        missing = sorted(set(shards) - set(scored))
        if missing:
            names = ", ".join(dataset.raw.shard(s).name for s in missing[:5])
            raise UserInputError(
                f"{flag} needs CLIP scores but {len(missing)} of {len(shards)} raw shards have none "
                f"(or scores of an older download) in {dataset.scores.display()}: {names}"
                f"{' ...' if len(missing) > 5 else ''}; run jobs/score.py again"
            )
    elif scored and len(scored) < len(shards):
        log.warning(
            "%d of %d raw shards are not scored: their samples get clip_score null in KEY.json",
            len(shards) - len(scored),
            len(shards),
        )
    model, pretrained = _score_model(dataset, scored)
    if scored:
        _check_parquet(
            dataset.scores.shard(scored[0]).table_file,
            "; run jobs/score.py again: it rescores shards written with an older schema",
        )
    has_matches = dataset.dedup.matches.exists()
    row_groups = 0
    if has_matches:
        row_groups = _check_matches(dataset)
    elif options.require_dedup:
        raise UserInputError(
            f"--require-dedup: {dataset.dedup.matches.path} does not exist: "
            "run jobs/dedup.py first"
        )
    else:
        log.warning(
            "%s does not exist: building WITHOUT dedup (benchmark duplicates are not removed); "
            "run jobs/dedup.py first or pass --require-dedup to make this an error",
            dataset.dedup.matches.path,
        )
    uid_lists = {
        name: {"sha256": file_digest(path, "--" + name.replace("_", "-"))}
        for name, path in options.uid_lists.items()
    }
    fingerprint = _fingerprint(dataset, shards, scored, has_matches)
    if options.probe_names:  # issue 18, part C; the key only then, so older builds still resume
        fingerprint["probes"] = _check_probes(dataset, options.probe_names, shards, scored)
    return BuildInputs(
        raw_shards=tuple(shards),
        scored_shards=tuple(scored),
        score_model=model,
        score_pretrained=pretrained,
        has_matches=has_matches,
        matches_row_groups=row_groups,
        fingerprint=fingerprint,
        uid_lists=uid_lists,
    )


def _check_probes(dataset: Dataset, names: tuple[str, ...], shards: list[int], scored: list[int]) -> str:
    """Every raw shard has current scores and probe scores of every named probe; returns their digest.

    Current: the probes' marker names the score shard's present token (scores redone since the
    probes ran make the probe scores stale).
    """
    flags = "--probe-max/--probe-min"
    unscored = sorted(set(shards) - set(scored))
    if unscored:
        raise UserInputError(
            f"{flags} need probe scores but {len(unscored)} of {len(shards)} raw shards have no current "
            f"scores in {dataset.scores.display()} (e.g. {dataset.raw.shard(unscored[0]).name}): run "
            "jobs/score.py --probe FILE first"
        )
    digest = hashlib.sha256()
    for index in shards:
        shard = dataset.scores.shard(index)
        where = dataset.display(*shard.probes_marker)
        if not shard.probes_complete():
            raise UserInputError(
                f"{flags} need probe scores but {where} does not exist: run jobs/score.py --probe FILE "
                "(an already scored dataset is not rescored)"
            )
        stats = shard.probes_stats()
        if stats.get("score_token") != shard.token():
            raise UserInputError(
                f"{where}: probe scores of an older scoring of shard {shard.name}: run jobs/score.py "
                "--probe FILE again"
            )
        missing = [n for n in names if n not in stats.get("probes", {})]
        if missing:
            raise UserInputError(
                f"{where}: no scores of probe(s) {missing} (has {sorted(stats.get('probes', {}))}): run "
                "jobs/score.py with every probe's --probe FILE"
            )
        digest.update(f"{index}:{marker_token(dataset.storage, shard.probes_marker)}\n".encode())
    return digest.hexdigest()


def _check_download_finished(dataset: Dataset, shards: list[int]) -> None:
    """Refuse a download that is still partial: a later resume would change the inputs."""
    manifest = dataset.input.manifest()
    if manifest is None:
        return  # raw shards written by another tool: nothing says how many there should be
    expected = int(manifest["shard_count"])
    complete = set(shards)
    missing = [s for s in range(expected) if s not in complete]
    if missing:
        names = ", ".join(dataset.raw.shard(s).name for s in missing[:5])
        raise UserInputError(
            f"the download of {dataset.url} is not finished: {len(missing)} of {expected} raw shards are "
            f"incomplete ({names}{' ...' if len(missing) > 5 else ''}); run jobs/download.py again first"
        )


def _check_parquet(table: TableFile, hint: str = "") -> None:
    try:
        table.check()
    except SchemaMismatch as exc:
        raise UserInputError(f"{exc}{hint}") from exc


def _check_matches(dataset: Dataset) -> int:
    """Check matches.parquet's schema and reasons; return its number of row groups."""
    matches = dataset.dedup.matches
    path = matches.path
    try:
        row_groups = matches.row_groups()
        reasons = set(matches.read(columns=["reason"]).column("reason").unique().to_pylist())
    except SchemaMismatch as exc:
        raise UserInputError(str(exc)) from exc
    unknown = sorted(str(r) for r in reasons - set(REASONS))
    if unknown:
        raise UserInputError(f"{path}: unknown reason(s) {unknown}; expected one of {list(REASONS)}")
    return row_groups


def _score_model(dataset: Dataset, scored: list[int]) -> tuple[str | None, str | None]:
    """Model and pretrained tag of the scores (the score job never mixes two models)."""
    if not scored:
        return None, None
    stats = dataset.scores.shard(scored[0]).stats()
    return stats["model"], stats["pretrained"]


def _fingerprint(dataset: Dataset, shards: list[int], scored: list[int], has_matches: bool) -> dict[str, Any]:
    """Digests of every input build_shards reads: stats markers change whenever a shard is redone."""
    raw = hashlib.sha256()
    for shard in shards:
        raw.update(f"{shard}:{dataset.raw.shard(shard).token()}\n".encode())
    scores = hashlib.sha256()
    for shard in scored:
        scores.update(f"{shard}:{dataset.scores.shard(shard).token()}\n".encode())
    matches = None
    if has_matches:
        digest = hashlib.sha256()
        with dataset.storage.open(*dataset.dedup.matches.parts) as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
        matches = digest.hexdigest()
    return {
        "raw_shards": len(shards),
        "raw": raw.hexdigest(),
        "scored_shards": len(scored),
        "scores": scores.hexdigest() if scored else None,
        "matches": matches,
    }


def upstream_versions(dataset: Dataset, inputs: BuildInputs) -> dict[str, Any]:
    """Schema versions and producing options of every input, for manifest.json."""
    versions = {
        "raw_shard": schema_version(RAW_SHARD_SCHEMA)[1],
        "scores": schema_version(SCORES_SCHEMA)[1] if inputs.scored_shards else None,
        "matches": schema_version(MATCHES_SCHEMA)[1] if inputs.has_matches else None,
    }
    download = dataset.raw.download_options()
    return {
        "schemas": versions,
        "download_options": download,
        "scores": {"model": inputs.score_model, "pretrained": inputs.score_pretrained}
        if inputs.scored_shards
        else None,
        "dedup": {"matches_sha256": inputs.fingerprint["matches"]} if inputs.has_matches else None,
        "inputs": inputs.fingerprint,
    }
