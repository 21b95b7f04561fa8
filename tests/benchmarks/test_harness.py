"""The benchmark harness (``benchmarks/harness``) and every benchmark script's ``--help``.

Fast: no Spark, no benchmark run; the only sockets are on 127.0.0.1.
"""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from PIL import Image

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))  # as when a script runs: `python benchmarks/NAME.py`

from harness import timing  # noqa: E402
from harness.net import free_port, loopback_opener  # noqa: E402
from harness.paths import REPO, WORK, shown, work_dir  # noqa: E402
from harness.photos import PHOTO, SCENE, PhotoSpec, describe, load_corpus, make_photo  # noqa: E402
from harness.table import markdown_table, pct, text_table  # noqa: E402

SMALL = PhotoSpec(long_side=(64, 96), max_aspect=1.5, min_short_side=32, quality=(80, 85))
SCRIPTS = sorted(p.name for p in BENCHMARKS.glob("*.py"))


# --------------------------------------------------------------------------- photos


def test_photo_is_a_jpeg_of_the_asked_size() -> None:
    for index in range(6):
        photo = make_photo(index, seed=3, spec=SMALL)
        with Image.open(io.BytesIO(photo.data)) as image:
            image.load()
            assert image.format == "JPEG" and image.mode == "RGB"
            assert image.size == (photo.width, photo.height)
        assert 64 <= max(image.size) <= 96
        assert min(image.size) >= 32 and max(image.size) / min(image.size) <= 1.5 + 0.05
        assert photo.source == SCENE and photo.caption


def test_photo_is_deterministic_for_a_seed() -> None:
    assert make_photo(4, seed=7, spec=SMALL) == make_photo(4, seed=7, spec=SMALL)
    assert make_photo(4, seed=7, spec=SMALL).data != make_photo(4, seed=8, spec=SMALL).data
    assert make_photo(4, seed=7, spec=SMALL).data != make_photo(5, seed=7, spec=SMALL).data


def test_every_nth_photo_starts_from_a_sample_photograph() -> None:
    spec = PhotoSpec(long_side=(64, 96), max_aspect=1.5, min_short_side=32, photo_every=2)
    assert [make_photo(i, seed=0, spec=spec).source for i in range(4)] == [PHOTO, SCENE, PHOTO, SCENE]


def test_photo_spec_refuses_nonsense() -> None:
    with pytest.raises(ValueError):
        PhotoSpec(long_side=(100, 50))
    with pytest.raises(ValueError):
        PhotoSpec(quality=(90, 101))


def test_corpus_is_cached_and_extended(tmp_path: Path) -> None:
    first = load_corpus(tmp_path, 3, seed=1, spec=SMALL)
    assert [e.index for e in first] == [0, 1, 2]
    assert all(e.path.read_bytes() == make_photo(e.index, 1, SMALL).data for e in first)
    stamps = [e.path.stat().st_mtime_ns for e in first]
    time.sleep(0.01)
    second = load_corpus(tmp_path, 4, seed=1, spec=SMALL)
    assert second[:3] == first and len(second) == 4
    assert [e.path.stat().st_mtime_ns for e in second[:3]] == stamps  # not made again
    other = load_corpus(tmp_path, 2, seed=2, spec=SMALL)  # another seed starts over
    assert other[0].path.read_bytes() == make_photo(0, 2, SMALL).data
    summary = describe(second)
    assert summary["images"] == 4 and summary["kb_median"] > 0


# --------------------------------------------------------------------------- tables


def test_markdown_table() -> None:
    table = markdown_table(["method", "ms"], [["ours", "1.5"], ["theirs", 12]])
    assert table == "| method | ms |\n| --- | ---: |\n| ours | 1.5 |\n| theirs | 12 |"
    assert markdown_table(["a", "b"], [[None, 1]], align="rl").splitlines()[1] == "| ---: | --- |"


def test_text_table_aligns_columns() -> None:
    table = text_table(["name", "img/s"], [["ours", "10.5"], ["img2dataset", "3.0"]], indent=2)
    assert table.splitlines() == [
        "  name         img/s",
        "  ours          10.5",
        "  img2dataset    3.0",
    ]


def test_tables_refuse_ragged_rows_and_bad_alignment() -> None:
    with pytest.raises(ValueError):
        text_table(["a", "b"], [["only one"]])
    with pytest.raises(ValueError):
        markdown_table(["a", "b"], [["1", "2"]], align="lx")


def test_pct() -> None:
    assert pct(0.1234) == "12%"
    assert pct(0.1234, 1) == "12.3%"
    assert pct(None) == "?" and pct(None, missing="-") == "-"


# --------------------------------------------------------------------------- timing


def test_best_of_rounds_interleaves_and_keeps_the_best() -> None:
    calls: list[str] = []
    waits = iter([0.03, 0.01, 0.02])

    def slow() -> None:
        calls.append("slow")
        time.sleep(next(waits))

    def fast() -> None:
        calls.append("fast")

    timings = timing.best_of_rounds({"slow": slow, "fast": fast}, rounds=3)
    assert calls == ["slow", "fast"] * 3
    assert timings["slow"].rounds == 3
    assert 0.01 <= timings["slow"].wall_s < 0.02  # the best round, not the mean
    assert timings["slow"].cpu_s < timings["slow"].wall_s  # sleeping costs no CPU
    assert timings["fast"].wall_s < timings["slow"].wall_s
    assert timing.Timing(2.0, 4.0, 1).per(4) == timing.Timing(0.5, 1.0, 1)
    with pytest.raises(ValueError):
        timing.best_of_rounds({"fast": fast}, rounds=0)


def test_best_run_picks_the_highest_rate() -> None:
    runs = [{"images_per_second": 3.0, "id": "a"}, {"images_per_second": 5.0, "id": "b"}]
    assert timing.best_run(runs)["id"] == "b"
    assert timing.best_run([]) is None
    assert timing.best_run([{"rate": 1}, {"rate": 2}], key="rate") == {"rate": 2}


def test_machine_load_readings() -> None:
    start = timing.cpu_times()
    sum(range(200_000))
    busy = timing.busy_since(start)
    assert busy is None or 0.0 <= busy <= 1.0
    started = time.monotonic()
    quiet = timing.wait_for_quiet(0, threshold=1.01, interval=0.05)  # any load counts as quiet
    assert quiet is None or 0.0 <= quiet <= 1.0
    assert time.monotonic() - started < 1


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="no CPU affinity on this platform")
def test_one_core_pins_and_restores() -> None:
    allowed = os.sched_getaffinity(0)
    with timing.one_core() as cpu:
        assert os.sched_getaffinity(0) == {cpu}
    assert os.sched_getaffinity(0) == allowed


# --------------------------------------------------------------------------- network and paths


def test_free_port_is_free_on_loopback() -> None:
    port = free_port()
    assert 1024 <= port <= 65535
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", port))
        server.listen(1)
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            accepted, peer = server.accept()
            accepted.close()
        assert peer[0] == "127.0.0.1"


def test_loopback_opener_ignores_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("http_proxy", "http://192.0.2.1:3128")  # never contacted: only inspected
    assert any(  # a default opener would use it ...
        isinstance(h, urllib.request.ProxyHandler) and h.proxies
        for h in urllib.request.build_opener().handlers
    )
    assert not any(  # ... ours does not
        isinstance(h, urllib.request.ProxyHandler) and h.proxies for h in loopback_opener().handlers
    )


def test_paths(tmp_path: Path) -> None:
    assert (REPO / "pipeline" / "dataset.py").is_file()
    assert WORK == REPO / "benchmarks" / "_work"
    made = work_dir("a", "b", root=tmp_path)
    assert made == tmp_path / "a" / "b" and made.is_dir()
    assert shown(REPO / "benchmarks" / "x.json") == "benchmarks/x.json"
    assert shown(tmp_path) == str(tmp_path)


# --------------------------------------------------------------------------- every script


def test_every_script_is_listed() -> None:
    assert {"download.py", "dedup.py", "score.py", "build_shards.py", "train.py", "soak.py"} <= set(SCRIPTS)


# Every script's --help in one interpreter (runpy, as `python benchmarks/NAME.py --help` runs it):
# one import of torch and pyspark instead of one per script.
_HELP_DRIVER = """
import contextlib, io, json, runpy, sys, traceback
results = {}
for path in sys.argv[1:]:
    out, err = io.StringIO(), io.StringIO()
    sys.argv = [path, "--help"]
    code = None
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            runpy.run_path(path, run_name="__main__")
        except SystemExit as exc:
            code = exc.code or 0
        except BaseException:
            err.write(traceback.format_exc())
            code = 1
    results[path] = {"code": code, "stdout": out.getvalue(), "stderr": err.getvalue()}
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def script_help() -> dict[str, dict]:
    """script name -> exit code, stdout and stderr of ``python benchmarks/NAME.py --help``."""
    paths = [str(BENCHMARKS / script) for script in SCRIPTS]
    # The socket guard's PYTHONPATH stays first in line after the scripts' own folders.
    python_path = os.pathsep.join(filter(None, [str(BENCHMARKS), str(REPO), os.environ.get("PYTHONPATH")]))
    result = subprocess.run(
        [sys.executable, "-c", _HELP_DRIVER, *paths],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": python_path},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return {Path(path).name: value for path, value in json.loads(result.stdout.splitlines()[-1]).items()}


@pytest.mark.parametrize("script", SCRIPTS)
def test_script_help(script_help: dict[str, dict], script: str) -> None:
    result = script_help[script]
    assert result["code"] == 0, result["stderr"][-3000:]
    assert result["stdout"].strip()
