"""Options of the build_shards job, built once from the command line."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from pipeline.build.uid_lists import list_format
from pipeline.cli_options import comma_strings, option, show_commas
from pipeline.errors import UserInputError
from pipeline.storage import storage_url

_SCORE = "CLIP score (needs scores/ from jobs/score.py; pick at most one)"
_DEDUP = "dedup (dedup/matches.parquet from jobs/dedup.py)"
_SUBSET = "subset (DataComp convention: uid lists, e.g. exported by the explorer)"
_RULES = "caption and image rules"
_OUTPUT = "output"
_PROBES = "probes (scores/probes/ from jobs/score.py --probe)"


def probe_rule(text: str) -> tuple[str, float]:
    """``NAME=VALUE`` of --probe-max/--probe-min -> (name, value)."""
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise ValueError("expected NAME=VALUE, e.g. watermark=0.5")
    return name.strip(), float(value)


def _show_languages(languages: tuple[str, ...] | None) -> str:
    return "all" if languages is None else show_commas(languages)


@dataclass(frozen=True)
class BuildOptions:
    """Everything the build_shards job needs; immutable so it can be shipped to executors."""

    dataset: str = option(parse=storage_url, help="dataset root with raw/ (and scores/, dedup/)")
    min_clip_score: float | None = option(
        None, parse=float, help="keep samples with clip_score >= X (LAION: 0.28)", group=_SCORE
    )
    top_fraction: float | None = option(
        None,
        parse=float,
        help="keep the top F of all scored samples by clip_score (DataComp style), F in (0, 1]",
        group=_SCORE,
    )
    keep_corpus_duplicates: bool = option(
        False,
        help="keep exact, near and semantic duplicates within the corpus (benchmark duplicates are always "
        "dropped)",
        group=_DEDUP,
    )
    require_dedup: bool = option(
        False,
        help="fail when dedup/matches.parquet is missing (default: warn and build without dedup)",
        group=_DEDUP,
    )
    include_uids: str | None = option(
        None,
        parse=storage_url,
        metavar="FILE",
        help="keep only the samples listed in FILE (.npy DataComp u8,u8 subset or strings, .txt, .parquet "
        "uid column; any fsspec URL); --top-fraction ranks within the subset",
        group=_SUBSET,
    )
    exclude_uids: str | None = option(
        None,
        parse=storage_url,
        metavar="FILE",
        help="drop the samples listed in FILE (same formats as --include-uids)",
        group=_SUBSET,
    )
    min_caption_length: int = option(
        5,
        help="drop captions shorter than this many characters (after stripping white space; a Chinese, "
        "Japanese or Korean character counts 3); LAION-400M/5B: 5, DataComp: 6",
        group=_RULES,
    )
    min_image_size: int = option(
        0, help="drop images whose original shorter side is below N px", group=_RULES
    )
    max_aspect_ratio: float = option(
        math.inf, help="drop images whose original longer/shorter side ratio is above X", group=_RULES
    )
    # Issue 18, part C: filters on probe scores.
    probe_max: tuple[tuple[str, float], ...] = option(
        (),
        parse=probe_rule,
        repeat=True,
        metavar="NAME=X",
        help="drop samples whose score of probe NAME is above X (e.g. watermark=0.5)",
        group=_PROBES,
    )
    probe_min: tuple[tuple[str, float], ...] = option(
        (),
        parse=probe_rule,
        repeat=True,
        metavar="NAME=X",
        help="drop samples whose score of probe NAME is below X (e.g. aesthetic=5)",
        group=_PROBES,
    )
    # --- caption rules (issue 18). On by default where the rule only drops captions that describe
    # nothing (file names, URLs, noise, boilerplate); the language and word rules are off, as in
    # LAION-5B. docs/thresholds.md gives the values LAION and DataComp used and why these defaults,
    # docs/build_shards.md the order of the rules.
    languages: tuple[str, ...] | None = option(
        None,
        parse=comma_strings,
        show=_show_languages,
        metavar="LANGS",
        help="keep only captions identified (by jobs/score.py) as one of these ISO 639-1 languages, e.g. "
        "en,zh ('und': captions without a letter); DataComp basic filter: en",
        group=_RULES,
    )
    min_caption_words: int = option(
        0,
        help="drop captions of fewer words (every Chinese/Japanese character counts as one); DataComp: 3",
        group=_RULES,
    )
    max_symbol_share: float = option(
        0.5,
        help="drop captions whose share of non-letter characters (digits, punctuation, symbols) is above X",
        group=_RULES,
    )
    drop_file_names: bool = option(
        True,
        toggle=True,
        help="drop captions that are a file name (IMG_1234.jpg, DSC00012, image.png)",
        group=_RULES,
    )
    max_repeated_chars: int = option(
        5,
        help="drop captions where one character (not a digit) repeats more than N times in a row "
        "('!!!!!!!!', 'aaaaaaa'); 0: off",
        group=_RULES,
    )
    drop_urls: bool = option(
        True, toggle=True, help="drop captions containing a URL or an e-mail address", group=_RULES
    )
    max_caption_repeats: int = option(
        100,
        help="drop captions (case and spaces ignored) shared by more than N downloaded images: boilerplate "
        "such as 'click to enlarge'; 0: off",
        group=_RULES,
    )
    samples_per_shard: int = option(
        10_000, help="samples in every final shard (only the last one may hold fewer)", group=_OUTPUT
    )
    seed: int = option(0, help="seed of the global shuffle", group=_OUTPUT)
    min_shards: int = option(
        16,
        help="warn when fewer shards are written (open_clip_train needs >= workers x GPUs shards)",
        group=_OUTPUT,
    )
    overwrite: bool = option(
        False,
        help="delete final/ first; needed to rebuild with other options or changed inputs",
        group=_OUTPUT,
    )

    def __post_init__(self) -> None:
        if self.min_clip_score is not None and self.top_fraction is not None:
            raise UserInputError("--min-clip-score and --top-fraction are mutually exclusive: pass one")
        if self.min_clip_score is not None and not -1.0 <= self.min_clip_score <= 1.0:
            raise UserInputError(
                f"--min-clip-score must be in [-1, 1] (a cosine similarity), got {self.min_clip_score}"
            )
        if self.top_fraction is not None and not 0.0 < self.top_fraction <= 1.0:
            raise UserInputError(f"--top-fraction must be in (0, 1], got {self.top_fraction}")
        for flag, path in (("--include-uids", self.include_uids), ("--exclude-uids", self.exclude_uids)):
            if path is not None:
                list_format(path, flag)
        if self.min_caption_length < 0:
            raise UserInputError(f"--min-caption-length must be >= 0, got {self.min_caption_length}")
        if self.languages is not None and not self.languages:
            raise UserInputError("--languages needs at least one language code, e.g. en,zh")
        for flag, value in (
            ("--min-caption-words", self.min_caption_words),
            ("--max-repeated-chars", self.max_repeated_chars),
            ("--max-caption-repeats", self.max_caption_repeats),
        ):
            if value < 0:
                raise UserInputError(f"{flag} must be >= 0, got {value}")
        if not 0.0 <= self.max_symbol_share <= 1.0:
            raise UserInputError(f"--max-symbol-share must be in [0, 1], got {self.max_symbol_share}")
        if self.min_image_size < 0:
            raise UserInputError(f"--min-image-size must be >= 0, got {self.min_image_size}")
        if math.isnan(self.max_aspect_ratio) or self.max_aspect_ratio < 1:
            raise UserInputError(f"--max-aspect-ratio must be >= 1, got {self.max_aspect_ratio}")
        for flag, rules in (("--probe-max", self.probe_max), ("--probe-min", self.probe_min)):
            names = [name for name, _ in rules]
            if len(set(names)) != len(names):
                raise UserInputError(f"{flag}: a probe is named twice ({names})")
        if self.samples_per_shard < 1:
            raise UserInputError(f"--samples-per-shard must be >= 1, got {self.samples_per_shard}")
        if self.min_shards < 0:
            raise UserInputError(f"--min-shards must be >= 0, got {self.min_shards}")

    @property
    def score_filter(self) -> bool:
        """True when a CLIP score rule is asked (so scores/ must exist)."""
        return self.min_clip_score is not None or self.top_fraction is not None

    @property
    def probe_names(self) -> tuple[str, ...]:
        """The probes a rule names (sorted, each once)."""
        return tuple(sorted({name for name, _ in (*self.probe_max, *self.probe_min)}))

    @property
    def caption_rules(self) -> dict[str, Any]:
        """The caption rules of issue 18 that are on, by option name (recorded only when on, so
        builds recorded before these rules existed still resume)."""
        rules = {
            "languages": list(self.languages) if self.languages is not None else None,
            "min_caption_words": self.min_caption_words or None,
            "max_symbol_share": self.max_symbol_share if self.max_symbol_share < 1.0 else None,
            "drop_file_names": self.drop_file_names or None,
            "max_repeated_chars": self.max_repeated_chars or None,
            "drop_urls": self.drop_urls or None,
            "max_caption_repeats": self.max_caption_repeats or None,
        }
        return {name: value for name, value in rules.items() if value is not None}

    @property
    def uid_lists(self) -> dict[str, str]:
        """The uid list options given, by name (``include_uids``, ``exclude_uids``) -> file URL."""
        lists = {"include_uids": self.include_uids, "exclude_uids": self.exclude_uids}
        return {name: path for name, path in lists.items() if path is not None}

    def output_options(self) -> dict[str, Any]:
        """The options that decide which samples land in which shard (recorded for resume checks).

        The uid lists are recorded by the digest of their content (``BuildInputs.uid_lists``), not
        here by their paths: a moved list is the same selection, an edited one is not.
        """
        probes = {"probe_max": dict(self.probe_max), "probe_min": dict(self.probe_min)}
        return {
            # Only when given, so builds recorded before probe rules existed still resume.
            **({"probes": probes} if self.probe_names else {}),
            "min_clip_score": self.min_clip_score,
            "top_fraction": self.top_fraction,
            "keep_corpus_duplicates": self.keep_corpus_duplicates,
            "min_caption_length": self.min_caption_length,
            "min_image_size": self.min_image_size,
            # JSON has no infinity: "inf" keeps the record valid JSON.
            "max_aspect_ratio": None if math.isinf(self.max_aspect_ratio) else self.max_aspect_ratio,
            "samples_per_shard": self.samples_per_shard,
            "seed": self.seed,
            **self.caption_rules,
        }
