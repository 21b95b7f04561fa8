"""The page: text from the data is escaped, missing stages are notes, nothing is loaded from the network."""

from __future__ import annotations

from pipeline.report.collect import Missing, Pair, PairSamples, ReportData, Training
from pipeline.report.html import CSP, render_page
from tests.report.browser import parse_images

HOSTILE = '<img src="http://attacker.test/x.png" onerror="alert(1)">'


def data(**sections: object) -> ReportData:
    missing = Missing("stage has not run yet")
    base = {
        "dataset": f"/data/{HOSTILE}",
        "generated": "2026-01-02T03:04:05+00:00",
        "downloads": missing,
        "sizes": missing,
        "scores": missing,
        "pairs": missing,
        "dedup": missing,
        "training": missing,
    }
    return ReportData(**{**base, **sections})


def test_text_from_the_data_is_escaped() -> None:
    pair = Pair("u" * 32, 0, HOSTILE, 0.3, "low_clip_score", None)
    samples = PairSamples("selection", (), (pair,), 0, {"low_clip_score": 1})
    training = Training(HOSTILE, HOSTILE, {HOSTILE: ((1, 1.0),)}, None, 0)
    page = render_page(data(pairs=samples, training=training), {"dropped": "figures/dropped.png"})
    images, _ = parse_images(page)
    assert [i["src"] for i in images] == ["figures/dropped.png"]
    assert HOSTILE not in page
    assert "&lt;img src=&quot;http://attacker.test/x.png&quot;" in page


def test_every_section_is_a_note_when_nothing_ran() -> None:
    page = render_page(data(dataset="/data/corpus"), {})
    assert page.count('<p class="not-run">Not run yet: stage has not run yet</p>') == 6
    assert '<code id="dataset">/data/corpus</code>' in page
    assert 'datetime="2026-01-02T03:04:05+00:00"' in page
    assert "<img" not in page


def test_unreadable_stage_is_an_error_note() -> None:
    page = render_page(data(scores=Missing("scores/ could not be read: bad", error=True)), {})
    assert '<p class="error">Could not show this section: scores/ could not be read: bad</p>' in page
    assert "<i>(could not be read)</i>" in page


def test_the_page_cannot_load_remote_resources() -> None:
    page = render_page(data(dataset="/data/corpus"), {})
    assert f'<meta http-equiv="Content-Security-Policy" content="{CSP}">' in page
    assert "default-src 'none'" in CSP and "img-src 'self' data:" in CSP
    assert "http://" not in page.replace("http-equiv", "") and "https://" not in page
