"""The explorer's pages through Flask's test client: searches, filters, pages, samples, exports, errors."""

from __future__ import annotations

import io
import re
import shutil
from pathlib import Path

import pytest

from pipeline.build.uid_lists import read_uid_list
from pipeline.errors import UserInputError
from pipeline.explore.app import create_app
from pipeline.explore.options import ExploreOptions
from pipeline.explore.server import open_explorer
from pipeline.synthetic.scenes import COLOURS
from tests.build.conftest import raw_rows, selection


@pytest.fixture(scope="module")
def client(explorer):
    return create_app(explorer).test_client()


def _uids(page: str) -> list[str]:
    return re.findall(r'class="card" data-uid="([0-9a-f]{32})"', page)


def _api(client, **params) -> dict:
    response = client.get("/api/search", query_string=params)
    assert response.status_code == 200, response.text
    return response.json


def test_browsing_lists_every_sample_best_score_first_page_by_page(client, explorer, explored: Path) -> None:
    stored = raw_rows(explored)
    first = _api(client)
    assert first["total"] == len(stored) == explorer.catalog.size
    everything = []
    for page in range(1, -(-first["total"] // 10) + 1):
        everything += _api(client, page=page)["samples"]
    assert sorted(s["uid"] for s in everything) == sorted(stored)
    scores = [s["clip_score"] for s in everything]
    assert scores == sorted(scores, reverse=True)
    html = client.get("/?page=2").text
    assert "page 2 of" in html and 'id="prev"' in html and len(_uids(html)) == 10


def test_a_text_query_finds_pictures_of_what_it_says(client) -> None:
    """The trained scorer tells colours apart: over the eight colours, most of the five nearest
    pictures to 'a COLOUR shape' have that colour in their caption (chance: 1 in 8)."""
    hits = {}
    for colour in COLOURS:
        found = _api(client, q=f"a {colour} shape")["samples"][:5]
        hits[colour] = sum(colour in s["caption"] for s in found)
        sims = [s["similarity"] for s in found]
        assert sims == sorted(sims, reverse=True)
    assert sum(hits.values()) >= 15, hits  # 20 when written; 5 by chance


def test_captions_search_uses_the_text_index(client) -> None:
    caption = _api(client)["samples"][0]["caption"]
    found = _api(client, q=caption, target="captions")["samples"]
    assert found[0]["caption"] == caption and found[0]["similarity"] == pytest.approx(1.0, abs=1e-2)


def test_more_like_this_starts_with_the_sample_itself(client) -> None:
    uid = _api(client)["samples"][3]["uid"]
    found = _api(client, like=uid)["samples"]
    assert found[0]["uid"] == uid and found[0]["similarity"] == pytest.approx(1.0, abs=1e-2)
    page = client.get(f"/?like={uid}").text
    assert "More like" in page and _uids(page)[0] == uid


def test_an_uploaded_image_finds_its_own_sample(client, explorer) -> None:
    uid = _api(client)["samples"][5]["uid"]
    record = explorer.catalog.row(uid)
    data, _ = explorer.images.image(record["shard"], uid)
    response = client.post("/upload", data={"image": (io.BytesIO(data), "query.jpg")})
    assert response.status_code == 302
    page = client.get(response.headers["Location"])
    assert "Nearest images to the uploaded picture" in page.text
    assert _uids(page.text)[0] == uid


def test_filters_narrow_the_selection(client, explored: Path) -> None:
    chosen = selection(explored)
    kept = {u for u, r in chosen.items() if r["reason"] is None}
    assert {s["uid"] for s in _all(client, status="kept")} == kept
    dropped = _all(client, status="dropped", reason="below_top_fraction")
    assert dropped and all(chosen[s["uid"]]["reason"] == "below_top_fraction" for s in dropped)
    between = _all(client, min_score="0.2", max_score="0.3")
    assert between and all(0.2 <= s["clip_score"] <= 0.3 for s in between)
    near = _all(client, q="a red shape", status="kept")
    assert near and {s["uid"] for s in near} <= kept
    english = _all(client, language="en")  # the session world's captions are all English
    assert len(english) == _api(client)["total"] and all(s["language"] == "en" for s in english)
    assert _api(client, language="zh")["total"] == 0
    assert "No sample matches." in client.get("/?language=zh").text


def test_a_dedup_group_and_the_sample_page_show_the_duplicates(client) -> None:
    duplicates = _all(client, dups="1")
    near = [s for s in duplicates if s["dedup_reason"] == "near_duplicate"]
    group = near[0]["group"]
    members = {s["uid"] for s in _all(client, group=group)}
    assert members == {group, *(s["uid"] for s in near)}
    page = client.get(f"/sample/{group}").text
    assert "kept for its duplicate group" in page and "Its duplicates (2)" in page
    assert set(_uids(page)) == {s["uid"] for s in near}
    member = client.get(f"/sample/{near[0]['uid']}").text
    assert "near_duplicate of" in member and f"/sample/{group}" in member
    benchmark = next(s for s in duplicates if s["dedup_reason"] == "benchmark_duplicate")
    page = client.get(f"/sample/{benchmark['uid']}").text
    assert "benchmark image benchmark/000003.jpg" in page and 'id="benchmark-image"' in page
    picture = client.get("/benchmark/benchmark/000003.jpg")
    assert picture.status_code == 200 and picture.data[:2] == b"\xff\xd8"
    assert client.get("/benchmark/benchmark/missing.jpg").status_code == 404


def test_the_sample_page_shows_the_image_caption_url_and_score(client, explored: Path) -> None:
    sample = _api(client)["samples"][0]
    page = client.get(f"/sample/{sample['uid']}").text
    assert sample["caption"] in page and sample["url"] in page and f"{sample['clip_score']:.4f}" in page
    assert '<td id="language">en</td>' in page
    image = client.get(f"/image/{sample['uid']}")
    assert image.status_code == 200 and image.mimetype == "image/jpeg" and image.data[:2] == b"\xff\xd8"
    assert client.get(f"/thumb/{sample['uid']}").data[:2] == b"\xff\xd8"


@pytest.mark.parametrize("fmt", ["txt", "npy"])
def test_export_writes_the_whole_selection_as_build_shards_reads_it(client, tmp_path: Path, fmt: str) -> None:
    wanted = {s["uid"] for s in _all(client, status="kept", min_score="0.25")}
    response = client.get(f"/export.{fmt}?status=kept&min_score=0.25&page=2")
    assert response.status_code == 200
    assert f"selection.{fmt}" in response.headers["Content-Disposition"]
    path = tmp_path / f"selection.{fmt}"
    path.write_bytes(response.data)
    assert set(read_uid_list(str(path))) == wanted and len(wanted) > 10


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("min_score=abc", "min_score must be a number, got &#39;abc&#39;"),
        ("min_score=0.5&max_score=0.1", "minimum CLIP score 0.5 is above the maximum 0.1"),
        ("status=maybe", "status must be one of all, kept, dropped"),
        ("page=0", "page must be a positive whole number"),
        ("q=red&like=0123", "give one query at a time, not text and like"),
        ("like=" + "0" * 32, "has no stored image embedding"),
        ("image=deadbeef", "no longer remembered by the server: upload it again"),
    ],
)
def test_bad_queries_get_a_400_page_saying_why(client, query: str, message: str) -> None:
    response = client.get(f"/?{query}")
    assert response.status_code == 400 and message in response.text


def test_unknown_samples_and_bad_uploads(client) -> None:
    assert client.get("/sample/" + "f" * 32).status_code == 404
    assert client.get("/image/" + "f" * 32).status_code == 404
    assert client.get("/export.csv").status_code == 404
    response = client.post("/upload", data={"image": (io.BytesIO(b"not an image"), "notes.txt")})
    assert (
        response.status_code == 400
        and "the uploaded file &#39;notes.txt&#39; is not an image" in response.text
    )
    assert "choose an image file" in client.post("/upload", data={}).text


def test_a_dataset_without_embeddings_or_index_is_refused_saying_what_to_run(
    scored: Path, explored: Path, tmp_path: Path
) -> None:
    dataset = tmp_path / "dataset"
    shutil.copytree(scored, dataset)
    with pytest.raises(UserInputError, match=r"jobs/score.py .*--save-embeddings"):
        open_explorer(ExploreOptions(dataset=str(dataset)))
    unindexed = tmp_path / "unindexed"
    shutil.copytree(explored, unindexed)
    shutil.rmtree(unindexed / "index")
    with pytest.raises(UserInputError, match=r"has no image index: run spark-submit jobs/index.py --dataset"):
        open_explorer(ExploreOptions(dataset=str(unindexed)))
    with pytest.raises(UserInputError, match="no such dataset folder"):
        open_explorer(ExploreOptions(dataset=str(tmp_path / "nowhere")))


def _all(client, **params) -> list[dict]:
    first = _api(client, **params)
    samples = first["samples"]
    for page in range(2, -(-first["total"] // first["page_size"]) + 1):
        samples += _api(client, **params, page=page)["samples"]
    assert len(samples) == first["total"]
    return samples
