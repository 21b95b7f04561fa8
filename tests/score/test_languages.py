"""Language and unicode-repair columns of the score job (issue 18): one real run on the session fixture."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np

from pipeline.captions.language import shared_identifier
from pipeline.captions.repair import repair_caption
from pipeline.dataset import Dataset
from pipeline.score.job import format_summary
from pipeline.score.shard_scorer import CaptionInfo


def test_every_scored_caption_has_its_language_and_repair_flag(scored: Path) -> None:
    dataset = Dataset(str(scored))
    identifier = shared_identifier()
    languages: Counter[str] = Counter()
    for shard in dataset.scores.complete_indices():
        table = dataset.scores.shard(shard).table(
            ["uid", "language", "language_confidence", "caption_repaired"]
        ).to_pylist()
        rows = dataset.raw.shard(shard).successes(["uid", "caption"])
        captions = {r["uid"]: r["caption"] or "" for r in rows}
        assert table and {r["uid"] for r in table} == set(captions)
        for row in table:
            fixed, changed = repair_caption(captions[row["uid"]])
            language, confidence = identifier.identify(fixed)
            assert (row["language"], row["caption_repaired"]) == (language, changed)
            assert np.isclose(row["language_confidence"], confidence, atol=1e-6)
            languages[language] += 1
    summary = json.loads((scored / "scores" / "_summary.json").read_text())
    assert summary["languages"] == dict(languages)
    assert summary["captions_repaired"] == 0  # the synthetic world writes clean captions
    assert "languages" in format_summary(summary) and "captions repaired" in format_summary(summary)


def test_the_model_reads_the_repaired_caption() -> None:
    info = CaptionInfo()
    samples = [("a", b"", "cafÃ© au lait &amp; croissant"), ("b", b"", "一只猫"), ("c", b"", "")]
    out = list(info.read(iter(samples)))
    assert [caption for _, _, caption in out] == ["café au lait & croissant", "一只猫", ""]
    assert info.repaired == [True, False, False]
    assert info.languages == ["fr", "zh", "und"]
    assert info.confidences[1] == 1.0 and info.confidences[2] == 0.0
