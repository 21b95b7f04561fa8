"""Download throughput, side by side: img2dataset 1.47.0, our Spark job, and the CPU floor.

    .venv/bin/python benchmarks/download.py [--images 10000] [--repeat 1] [--skip-img2dataset]

One run (see docs/benchmarks.md, "Download"):

1. builds (once, cached under benchmarks/_work/corpus) a corpus of photo-like JPEGs
   (harness.photos), 400-2000 px on the long side with random aspect ratios, plus a URL list
   (parquet, columns URL and TEXT);
2. serves it from nginx on 127.0.0.1 (a free port, keep-alive on, access log off);
3. runs img2dataset 1.47.0 from its own venv (benchmarks/_work/img2dataset-venv, created on first use)
   with every --i2d-threads value and keeps the best;
4. runs ``spark-submit --master local[2] jobs/download.py`` (``--master`` to change) with the same
   output settings;
5. measures the CPU floor: the fastest known way to turn the same bytes (from memory, on all cores)
   into the same output (256 px, border, JPEG q95): Pillow's reduced DCT decode (``Image.draft``)
   + ``reduce``/``resize`` + encode, and OpenCV's reduced decode (``IMREAD_REDUCED_COLOR_2/4/8``)
   + ``INTER_AREA`` resize + encode where ``cv2`` is installed; the faster one is the floor.
   Our own ``pipeline.image.process_image`` is timed the same way, as a separate row;
6. with ``--s3``: runs our job a second time in each round with the dataset in a bucket on a
   real S3 server (SeaweedFS from testkit.s3, on 127.0.0.1), so local disk and object storage
   are compared in the same run;
7. prints a table with the ratios and the targets, and writes benchmarks/_work/download_results.json.

Nothing leaves the machine: every request goes to 127.0.0.1. nginx must be installed
(``apt-get install -y nginx``); the script says so and exits 1 when it is not.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import multiprocessing
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from harness.jobs import run_spark_job
from harness.net import LOOPBACK_ENV, free_port, loopback_opener
from harness.paths import WORK
from harness.photos import CorpusEntry, PhotoSpec, load_corpus
from harness.table import pct, text_table
from harness.timing import best_run, busy_since, cpu_times, wait_for_quiet
from PIL import Image

from pipeline.dataset import Dataset
from pipeline.image import EncodeFormat, ImageOptions, ResizeMode, process_image
from pipeline.logs import setup_logging
from pipeline.storage import Storage
from testkit.img2dataset import VERSION as I2D_TESTKIT_VERSION
from testkit.img2dataset import ensure_img2dataset
from testkit.s3 import SeaweedS3

I2D_VERSION = I2D_TESTKIT_VERSION  # its venv (and the tests'): testkit/img2dataset.py
TARGET_VS_I2D = 2.0
TARGET_VS_FLOOR = 0.7
PHOTOS = PhotoSpec(long_side=(400, 2000), max_aspect=2.0, min_short_side=200)
# What both tools store (img2dataset's flags say the same): the job's defaults, written out.
OUTPUT = ImageOptions(
    image_size=256, resize_mode=ResizeMode.BORDER, encode_format=EncodeFormat.JPEG, encode_quality=95
)
# Environment of the img2dataset runs: no update checks, no telemetry, nothing but loopback traffic.
QUIET_ENV = {
    "NO_ALBUMENTATIONS_UPDATE": "1",
    "WANDB_MODE": "disabled",
    "WANDB_DISABLED": "true",
    "HF_HUB_OFFLINE": "1",
    **LOOPBACK_ENV,
}

log = logging.getLogger("benchmarks.download")


@dataclass(frozen=True)
class Options:
    """The command line of one benchmark run."""

    images: int
    samples_per_shard: int
    repeat: int
    i2d_threads: tuple[int, ...]
    ours_args: tuple[str, ...]
    master: str
    nginx_workers: int
    wait_quiet: float
    seed: int
    work: Path
    skip_img2dataset: bool
    skip_ours: bool
    skip_floor: bool
    profile_images: int
    s3: bool


def parse_options(argv: list[str] | None = None) -> Options:
    """Options from the command line."""
    p = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--images", type=int, default=10_000, help="images in the corpus and URL list")
    p.add_argument("--samples-per-shard", type=int, default=1000, help="for both tools")
    p.add_argument("--repeat", type=int, default=1, help="rounds of every measurement; the best counts")
    p.add_argument("--i2d-threads", default="32,64,128", help="img2dataset thread_count values to try")
    p.add_argument(
        "--ours-args",
        default="--concurrency 64 --per-host-concurrency 64",
        help="extra jobs/download.py options (one host serves everything, hence per-host 64)",
    )
    p.add_argument(
        "--master",
        default="local[2]",
        help="spark-submit --master of our job (task slots: the Python processes that download)",
    )
    p.add_argument("--nginx-workers", type=int, default=1)
    p.add_argument(
        "--wait-quiet",
        type=float,
        default=300,
        help="seconds to wait before each measurement for other processes to leave the CPUs idle",
    )
    p.add_argument("--seed", type=int, default=0, help="corpus seed")
    p.add_argument("--work", type=Path, default=WORK)
    p.add_argument("--skip-img2dataset", action="store_true")
    p.add_argument("--skip-ours", action="store_true")
    p.add_argument("--skip-floor", action="store_true")
    p.add_argument("--profile-images", type=int, default=300, help="images for the per-step profile; 0: none")
    p.add_argument("--s3", action="store_true", help="also run ours into SeaweedFS S3 on loopback")
    a = p.parse_args(argv)
    if a.images < 1 or a.repeat < 1:
        p.error("--images and --repeat must be >= 1")
    return Options(
        images=a.images,
        samples_per_shard=a.samples_per_shard,
        repeat=a.repeat,
        i2d_threads=tuple(int(t) for t in a.i2d_threads.split(",") if t.strip()),
        ours_args=tuple(a.ours_args.split()),
        master=a.master,
        nginx_workers=a.nginx_workers,
        wait_quiet=a.wait_quiet,
        seed=a.seed,
        work=a.work.resolve(),
        skip_img2dataset=a.skip_img2dataset,
        skip_ours=a.skip_ours,
        skip_floor=a.skip_floor,
        profile_images=a.profile_images,
        s3=a.s3,
    )


def write_url_list(path: Path, entries: list[CorpusEntry], port: int) -> None:
    """The input of both tools: one row per picture, its URL on the nginx server and its caption."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    urls = [f"http://127.0.0.1:{port}/images/{e.name}" for e in entries]
    pq.write_table(pa.table({"URL": urls, "TEXT": [e.caption for e in entries]}), path)


# --------------------------------------------------------------------------- nginx


NGINX_CONF = """\
daemon off;
master_process on;
worker_processes {workers};
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{
    worker_connections 4096;
}}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 120s;
    keepalive_requests 1000000;
    open_file_cache max=4096 inactive=60s;  # well under the file limit: a cache full of open
                                           # files made nginx fail with EMFILE on 30,000-image lists
    types {{ image/jpeg jpg; }}
    default_type application/octet-stream;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        root {root};
        location / {{ }}
    }}
}}
"""


class Nginx:
    """nginx in the foreground (``daemon off``) on 127.0.0.1, stopped by ``stop()``."""

    def __init__(self, root: Path, prefix: Path, workers: int) -> None:
        self.root, self.prefix, self.workers = root, prefix, workers
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, probe_path: str) -> None:
        """Start nginx on a free port and wait until it serves ``probe_path``."""
        binary = shutil.which("nginx") or next(
            (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None
        )
        if binary is None:
            log.error("nginx is not installed. Install it with:  sudo apt-get install -y nginx")
            raise SystemExit(1)
        self.prefix.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        conf = self.prefix / "nginx.conf"
        conf.write_text(
            NGINX_CONF.format(workers=self.workers, prefix=self.prefix, port=self.port, root=self.root)
        )
        log.info("starting nginx on 127.0.0.1:%d serving %s", self.port, self.root)
        self.process = subprocess.Popen(
            [binary, "-p", str(self.prefix), "-c", str(conf), "-e", str(self.prefix / "error.log")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        url = f"http://127.0.0.1:{self.port}/{probe_path}"
        deadline = time.monotonic() + 15
        while True:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode() if self.process.stderr else ""
                raise RuntimeError(f"nginx exited with {self.process.returncode}: {err.strip()}")
            try:
                with loopback_opener().open(url, timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"nginx did not serve {url} within 15 s; see {self.prefix}/error.log")
            time.sleep(0.1)

    def stop(self) -> None:
        """Graceful shutdown of master and workers (killed after 10 s)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGQUIT)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        log.info("nginx stopped")


# --------------------------------------------------------------------------- img2dataset


def run_img2dataset(
    exe: Path, urls: Path, output: Path, threads: int, samples_per_shard: int, logfile: Path
) -> dict[str, Any]:
    """One img2dataset run (2 processes, ``threads`` threads each) with the same output settings."""
    if output.exists():
        shutil.rmtree(output)
    cmd = [
        str(exe),
        f"--url_list={urls}",
        "--input_format=parquet",
        "--url_col=URL",
        "--caption_col=TEXT",
        "--output_format=webdataset",
        f"--output_folder={output}",
        "--processes_count=2",
        f"--thread_count={threads}",
        f"--image_size={OUTPUT.image_size}",
        f"--resize_mode={OUTPUT.resize_mode.value}",
        f"--encode_format={OUTPUT.encode_format.value}",
        f"--encode_quality={OUTPUT.encode_quality}",
        f"--number_sample_per_shard={samples_per_shard}",
        "--distributor=multiprocessing",
        "--enable_wandb=False",
        "--retries=0",
        "--timeout=20",
    ]
    log.info("img2dataset, %d threads: %s", threads, " ".join(cmd))
    started, cpu = time.perf_counter(), cpu_times()
    with logfile.open("w") as out:
        rc = subprocess.run(
            cmd, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **QUIET_ENV}
        ).returncode
    wall, busy = time.perf_counter() - started, busy_since(cpu)
    if rc != 0:
        raise RuntimeError(f"img2dataset exited with {rc}; see {logfile}")
    stats = [json.loads(p.read_text()) for p in sorted(output.glob("*_stats.json"))]  # img2dataset's own
    successes = sum(s.get("successes", 0) for s in stats)
    errors: dict[str, int] = {}
    for s in stats:
        for message, n in (s.get("status_dict") or {}).items():
            if message != "success":
                errors[message] = errors.get(message, 0) + n
    result = {
        "threads": threads,
        "wall_seconds": round(wall, 2),
        "cpu_busy": busy,
        "rows": sum(s.get("count", 0) for s in stats),
        "successes": successes,
        "images_per_second": round(successes / wall, 2),
        "shards": len(stats),
        "errors": errors,
    }
    log.info(
        "img2dataset, %d threads: %d/%d in %.1f s = %.1f images/s",
        threads,
        successes,
        result["rows"],
        wall,
        result["images_per_second"],
    )
    return result


# --------------------------------------------------------------------------- our job


def run_ours(
    urls: Path, dataset: str, samples_per_shard: int, master: str, extra: tuple[str, ...], logfile: Path
) -> dict[str, Any]:
    """``spark-submit jobs/download.py`` into a fresh dataset (a folder or any fsspec URL); wall
    rate and the job's own summary."""
    Storage(dataset).remove()
    args = [
        "--urls", str(urls),
        "--dataset", str(dataset),
        "--allow-network", "127.0.0.1/32",
        "--image-size", str(OUTPUT.image_size),
        "--resize-mode", OUTPUT.resize_mode.value,
        "--encode-format", OUTPUT.encode_format.value,
        "--encode-quality", str(OUTPUT.encode_quality),
        "--samples-per-shard", str(samples_per_shard),
        *extra,
    ]  # fmt: skip
    run = run_spark_job("download", args, master=master, log_path=logfile)
    summary = Dataset(dataset).raw.summary()
    if summary is None:
        raise RuntimeError(f"the download job wrote no summary into {dataset}; see {logfile}")
    successes = summary.get("successes", 0)
    result = {
        "wall_seconds": run.wall_s,
        "cpu_busy": run.cpu_busy,
        "job_seconds": summary.get("seconds"),
        "rows": summary.get("rows"),
        "successes": successes,
        "images_per_second": round(successes / run.wall_s, 2),
        "job_images_per_second": summary.get("images_per_second"),
        # ingest / duplicates / download, where the job reports them; the rest of the wall time is
        # Spark start-up and shutdown.
        "phase_seconds": summary.get("phase_seconds"),
        "outside_job_seconds": round(run.wall_s - (summary.get("seconds") or 0), 2),
        "shards": summary.get("shards"),
        "errors": summary.get("errors", {}),
        "master": master,
        "args": list(extra),
        "dataset": dataset.split("://")[0] if "://" in dataset else "local disk",
    }
    log.info(
        "ours: %d/%d in %.1f s wall (%.1f s in job) = %.1f images/s wall, %s images/s in job",
        successes,
        result["rows"],
        run.wall_s,
        result["job_seconds"] or 0,
        result["images_per_second"],
        result["job_images_per_second"],
    )
    return result


# --------------------------------------------------------------------------- CPU floor


def fitted_size(width: int, height: int, size: int) -> tuple[int, int]:
    """The picture's size inside ``size`` x ``size`` (the border mode's, before padding)."""
    scale = size / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def pillow_floor(data: bytes, options: ImageOptions = OUTPUT) -> bytes:
    """Decode at the smallest DCT scale that still covers the target, reduce, resize, pad, encode.

    ``Image.draft`` makes libjpeg-turbo decode at 1/2, 1/4 or 1/8 scale; ``reduce`` then averages
    whole pixel blocks where a factor of 2 or more is left (non-JPEG input), and one BOX resize
    (the job's area filter) reaches the exact size.
    """
    with Image.open(io.BytesIO(data)) as opened:
        target = fitted_size(*opened.size, options.image_size)
        opened.draft("RGB", target)
        opened.load()
        image = opened if opened.mode == "RGB" else opened.convert("RGB")
        factor = min(image.width // target[0], image.height // target[1])
        if factor >= 2:
            image = image.reduce(factor)
        if image.size != target:
            image = image.resize(target, Image.Resampling.BOX)
    size = options.image_size
    if target != (size, size):
        canvas = Image.new("RGB", (size, size), options.border_color)
        canvas.paste(image, ((size - target[0]) // 2, (size - target[1]) // 2))
        image = canvas
    out = io.BytesIO()
    image.save(out, "JPEG", quality=options.encode_quality)
    return out.getvalue()


def opencv_available() -> bool:
    """True when ``cv2`` (opencv-python-headless, optional) can be imported."""
    try:
        import cv2  # noqa: F401
    except ImportError:
        return False
    return True


def opencv_floor(data: bytes, options: ImageOptions = OUTPUT) -> bytes:
    """OpenCV's reduced decode (``IMREAD_REDUCED_COLOR_8/4/2``), ``INTER_AREA`` resize, pad, encode.

    The reduction is the largest that still covers the target (read from the header with Pillow,
    which parses only the header here).
    """
    import cv2

    with Image.open(io.BytesIO(data)) as header:
        width, height = header.size
    target = fitted_size(width, height, options.image_size)
    factor = next((f for f in (8, 4, 2) if width // f >= target[0] and height // f >= target[1]), 1)
    flags = {
        8: cv2.IMREAD_REDUCED_COLOR_8,
        4: cv2.IMREAD_REDUCED_COLOR_4,
        2: cv2.IMREAD_REDUCED_COLOR_2,
        1: cv2.IMREAD_COLOR,
    }
    pixels = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), flags[factor])
    if pixels is None:
        raise ValueError("OpenCV cannot decode the image")
    if (pixels.shape[1], pixels.shape[0]) != target:
        pixels = cv2.resize(pixels, target, interpolation=cv2.INTER_AREA)
    size = options.image_size
    top, left = (size - target[1]) // 2, (size - target[0]) // 2
    if target != (size, size):
        blue_green_red = tuple(reversed(options.border_color))
        pixels = cv2.copyMakeBorder(
            pixels, top, size - target[1] - top, left, size - target[0] - left,
            cv2.BORDER_CONSTANT, value=blue_green_red,
        )  # fmt: skip
    ok, encoded = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, options.encode_quality])
    if not ok:
        raise ValueError("OpenCV cannot encode the image")
    return encoded.tobytes()


def ours_process_image(data: bytes, options: ImageOptions = OUTPUT) -> bytes:
    """Our own per-image work in the download job (check, decode, resize, encode, sha256, pHash)."""
    return process_image(data, options).data


FLOORS: dict[str, Callable[[bytes, ImageOptions], bytes]] = {"pillow": pillow_floor}
if opencv_available():
    FLOORS["opencv"] = opencv_floor
CONVERTERS: dict[str, Callable[[bytes, ImageOptions], bytes]] = {
    **FLOORS,
    "process_image": ours_process_image,
}
LABELS = {
    "pillow": "Pillow draft + reduce/resize + encode",
    "opencv": "OpenCV IMREAD_REDUCED + INTER_AREA + encode",
    "process_image": "ours: pipeline.image.process_image",
}

_POOL_DATA: list[bytes] = []  # inherited by the pool's forked workers: nothing is copied


def _convert_one(job: tuple[str, int]) -> tuple[int, float]:
    """(1 if converted else 0, CPU seconds of this call): CPU time is what other load hardly skews."""
    name, i = job
    started = time.thread_time()
    try:
        CONVERTERS[name](_POOL_DATA[i], OUTPUT)
    except Exception:  # an undecodable image counts as a failure, as in the job
        return 0, time.thread_time() - started
    return 1, time.thread_time() - started


def _warm(_: int) -> int:
    """Import and initialise every converter in a worker, outside the timed part."""
    if "opencv" in CONVERTERS:
        import cv2

        cv2.setNumThreads(0)  # one thread per process, like the other converters
    for convert in CONVERTERS.values():
        convert(_POOL_DATA[0], OUTPUT)
    return os.getpid()


def check_outputs(data: bytes) -> dict[str, tuple[int, int]]:
    """Every converter's output size on one image: they must all store the same picture size."""
    sizes = {}
    for name, convert in CONVERTERS.items():
        with Image.open(io.BytesIO(convert(data, OUTPUT))) as image:
            sizes[name] = image.size
    if len(set(sizes.values())) != 1:
        raise RuntimeError(f"the converters store different sizes: {sizes}")
    return sizes


def convert_rates(files: list[Path], processes: int) -> list[dict[str, Any]]:
    """Every converter over the same bytes in memory on ``Pool(processes)``: one result each."""
    _POOL_DATA[:] = [p.read_bytes() for p in files]
    results: dict[str, dict[str, Any]] = {}
    try:
        with multiprocessing.get_context("fork").Pool(processes) as pool:
            pool.map(_warm, range(processes * 4))
            for name in CONVERTERS:
                started, cpu = time.perf_counter(), cpu_times()
                jobs = [(name, i) for i in range(len(files))]
                outcomes = list(pool.imap_unordered(_convert_one, jobs, chunksize=8))
                seconds, busy = time.perf_counter() - started, busy_since(cpu)
                ok = sum(o for o, _ in outcomes)
                cpu_seconds = sum(c for _, c in outcomes)
                results[name] = {
                    "method": name,
                    "processes": processes,
                    "seconds": round(seconds, 2),
                    "cpu_busy": busy,
                    "successes": ok,
                    "images_per_second": round(ok / seconds, 2),
                    "cpu_ms_per_image": round(1000 * cpu_seconds / len(files), 3),
                    # What Pool(processes) reaches on otherwise idle cores: hardly skewed by other load.
                    "images_per_second_from_cpu_time": (
                        round(ok * processes / cpu_seconds, 2) if cpu_seconds else None
                    ),
                }
                log.info(
                    "%s: %d images in %.1f s on %d processes = %.1f images/s (%.2f CPU-ms/image)",
                    name,
                    ok,
                    seconds,
                    processes,
                    results[name]["images_per_second"],
                    results[name]["cpu_ms_per_image"],
                )
    finally:
        _POOL_DATA.clear()
    return list(results.values())


def stage_profile(files: list[Path]) -> dict[str, float] | None:
    """Milliseconds per image of each step of process_image, single core (internal API, best effort)."""
    try:
        import hashlib

        from pipeline.image.decode import decode_rgb, open_checked
        from pipeline.image.encode import encode
        from pipeline.image.phash import phash
        from pipeline.image.resize import resize
    except ImportError as exc:
        log.warning("no stage profile: %s", exc)
        return None
    totals = dict.fromkeys(("open", "decode", "resize", "encode", "sha256", "phash"), 0.0)
    for path in files:
        data = path.read_bytes()
        t0 = time.perf_counter()
        image = open_checked(data, OUTPUT)
        t1 = time.perf_counter()
        rgb, original = decode_rgb(image, OUTPUT)
        t2 = time.perf_counter()
        stored = resize(rgb, original, OUTPUT)
        t3 = time.perf_counter()
        encode(stored, OUTPUT)
        t4 = time.perf_counter()
        hashlib.sha256(data).hexdigest()
        t5 = time.perf_counter()
        phash(stored)
        t6 = time.perf_counter()
        for key, dt in zip(totals, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5), strict=True):
            totals[key] += dt
    profile = {key: round(1000 * value / len(files), 3) for key, value in totals.items()}
    profile["total"] = round(sum(profile.values()), 3)
    log.info("process_image per image, single core (ms): %s", profile)
    return profile


# --------------------------------------------------------------------------- report


def format_report(results: dict[str, Any]) -> str:
    """The result table, the thread counts img2dataset was tried with, and the ratios."""
    i2d, ours = results.get("img2dataset_best"), results.get("ours_best")
    floor, own = results.get("cpu_floor_best"), results.get("process_image_best")
    rows: list[tuple[str, str, str]] = []
    if i2d:
        rows.append(
            (
                f"img2dataset {I2D_VERSION} ({i2d['threads']} threads x 2 processes)",
                f"{i2d['images_per_second']:.1f}",
                f"{i2d['wall_seconds']:.1f} s wall, {pct(i2d['cpu_busy'])} CPU busy",
            )
        )
    if ours:
        rows.append(
            (
                f"ours, spark-submit {ours.get('master', 'local[2]')} (wall)",
                f"{ours['images_per_second']:.1f}",
                f"{ours['wall_seconds']:.1f} s wall, {pct(ours['cpu_busy'])} CPU busy",
            )
        )
        rows.append(
            (
                "ours, in job (_summary.json)",
                f"{ours['job_images_per_second']:.1f}",
                f"{ours['job_seconds']:.1f} s in job",
            )
        )
    s3 = results.get("ours_s3_best")
    if s3:
        rows.append(
            (
                "ours, dataset on S3 (SeaweedFS, loopback) (wall)",
                f"{s3['images_per_second']:.1f}",
                f"{s3['wall_seconds']:.1f} s wall, {pct(s3['cpu_busy'])} CPU busy, of which the "
                f"S3 server {s3.get('s3_server_cpu_seconds', 0):.1f} CPU-s",
            )
        )
        rows.append(
            (
                "ours, dataset on S3, in job",
                f"{s3['job_images_per_second']:.1f}",
                f"{s3['job_seconds']:.1f} s in job",
            )
        )
    for run in results.get("cpu_floor_by_method", {}).values():
        best = "best: " if floor and run["method"] == floor["method"] else ""
        rows.append(
            (
                f"CPU floor, {LABELS[run['method']]}, Pool({run['processes']})",
                f"{run['images_per_second']:.1f}",
                f"{best}{run['seconds']:.1f} s, {pct(run['cpu_busy'])} CPU busy, "
                f"{run['cpu_ms_per_image']:.2f} CPU-ms/image",
            )
        )
    if own:
        rows.append(
            (
                f"{LABELS['process_image']}, Pool({own['processes']}) (not a floor)",
                f"{own['images_per_second']:.1f}",
                f"{own['seconds']:.1f} s, {own['cpu_ms_per_image']:.2f} CPU-ms/image",
            )
        )
    lines = [f"Download benchmark: {results['images']} images, {results['cpus']} CPUs", ""]
    lines.append(text_table(("", "images/s", "time"), rows, align="lrl", indent=2))
    if not results.get("opencv"):
        lines.append("  (OpenCV floor not measured: cv2 is not installed; see benchmarks/README.md)")
    if results.get("img2dataset"):
        tried = ", ".join(f"{r['threads']}: {r['images_per_second']:.1f}" for r in results["img2dataset"])
        lines.append(f"  (img2dataset images/s by thread_count: {tried})")
    ratios = results.get("ratios", {})
    lines.append("")
    if "ours_vs_img2dataset" in ratios:
        ok = ratios["ours_vs_img2dataset"] >= TARGET_VS_I2D
        lines.append(
            f"  ours / img2dataset   {ratios['ours_vs_img2dataset']:6.2f}x   target >= {TARGET_VS_I2D:.1f}x"
            f"   {'MET' if ok else 'MISSED'}"
        )
    if "ours_vs_cpu_floor" in ratios:
        ok = ratios["ours_vs_cpu_floor"] >= TARGET_VS_FLOOR
        lines.append(
            f"  ours / CPU floor     {100 * ratios['ours_vs_cpu_floor']:5.1f}%    "
            f"target >= {100 * TARGET_VS_FLOOR:.0f}%    {'MET' if ok else 'MISSED'}"
        )
    if "ours_in_job_vs_cpu_floor" in ratios:
        lines.append(
            f"  (in-job / CPU floor  {100 * ratios['ours_in_job_vs_cpu_floor']:5.1f}%"
            + (
                f", in-job / img2dataset {ratios['ours_in_job_vs_img2dataset']:.2f}x)"
                if "ours_in_job_vs_img2dataset" in ratios
                else ")"
            )
        )
    if "ours_s3_vs_local" in ratios:
        lines.append(
            f"  ours on S3 / ours on local disk   {ratios['ours_s3_vs_local']:.2f}x wall, "
            f"{ratios['ours_s3_in_job_vs_local']:.2f}x in job"
        )
    if "process_image_vs_cpu_floor" in ratios:
        lines.append(f"  (process_image / CPU floor {100 * ratios['process_image_vs_cpu_floor']:5.1f}%)")
    return "\n".join(lines)


def ratios_of(results: dict[str, Any]) -> dict[str, float]:
    """Ours against img2dataset and against the floor (best run of each)."""
    i2d, ours = results["img2dataset_best"], results["ours_best"]
    floor, own = results["cpu_floor_best"], results["process_image_best"]
    ratios: dict[str, float] = {}
    if ours and i2d:
        ratios["ours_vs_img2dataset"] = round(ours["images_per_second"] / i2d["images_per_second"], 3)
        ratios["ours_in_job_vs_img2dataset"] = round(
            ours["job_images_per_second"] / i2d["images_per_second"], 3
        )
    s3 = results.get("ours_s3_best")
    if ours and s3:
        ratios["ours_s3_vs_local"] = round(s3["images_per_second"] / ours["images_per_second"], 3)
        ratios["ours_s3_in_job_vs_local"] = round(
            s3["job_images_per_second"] / ours["job_images_per_second"], 3
        )
    if ours and floor:
        ratios["ours_vs_cpu_floor"] = round(ours["images_per_second"] / floor["images_per_second"], 3)
        ratios["ours_in_job_vs_cpu_floor"] = round(
            ours["job_images_per_second"] / floor["images_per_second"], 3
        )
    if own and floor:
        ratios["process_image_vs_cpu_floor"] = round(own["images_per_second"] / floor["images_per_second"], 3)
    return ratios


def main(argv: list[str] | None = None) -> int:
    """Run the measurements of :func:`parse_options`'s choice; print and save the results."""
    options = parse_options(argv)
    setup_logging()
    work = options.work
    work.mkdir(parents=True, exist_ok=True)
    cpus = os.cpu_count() or 1
    i2d_exe = None if options.skip_img2dataset else ensure_img2dataset(work / "img2dataset-venv")

    corpus = work / "corpus"
    entries = load_corpus(corpus, options.images, options.seed, PHOTOS, processes=cpus)
    files = [e.path for e in entries]
    results: dict[str, Any] = {
        "images": options.images,
        "cpus": cpus,
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "python": platform.python_version(),
        "pillow": Image.__version__,
        "opencv": None,
        "samples_per_shard": options.samples_per_shard,
        "corpus_bytes": sum(e.bytes for e in entries),
        "corpus_megapixels_mean": round(sum(e.megapixels for e in entries) / len(entries), 3),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "img2dataset": [],
        "ours": [],
        "cpu_floor": [],
        "process_image": [],
    }
    if "opencv" in FLOORS:
        import cv2

        results["opencv"] = cv2.__version__
    if not options.skip_floor:
        results["output_sizes"] = check_outputs(files[0].read_bytes())
    runs = work / "runs"
    runs.mkdir(exist_ok=True)
    nginx = Nginx(corpus, work / "nginx", options.nginx_workers)

    def quiet(measure: Callable[..., Any], *measure_args: Any) -> list[dict[str, Any]]:
        """Run ``measure`` once the machine is quiet; its run(s), with the load seen before."""
        background = wait_for_quiet(options.wait_quiet)
        result = measure(*measure_args)
        measured = result if isinstance(result, list) else [result]
        for run in measured:
            run["background_busy_before"] = background
        return measured

    urls = work / f"urls_{options.images}.parquet"
    s3: SeaweedS3 | None = None
    results["ours_s3"] = []
    try:
        if options.s3 and not options.skip_ours:
            shutil.rmtree(work / "seaweedfs", ignore_errors=True)
            s3 = SeaweedS3(work / "seaweedfs").start()
            os.environ.update(s3.environment())  # the jobs inherit them (harness.jobs.job_env)
            bucket = s3.new_bucket("bench")
        if i2d_exe is not None or not options.skip_ours:
            nginx.start(f"images/{entries[0].name}")
            write_url_list(urls, entries, nginx.port)
        for round_ in range(1, options.repeat + 1):
            log.info("round %d of %d", round_, options.repeat)
            if i2d_exe is not None:
                for threads in options.i2d_threads:
                    log_path = runs / f"img2dataset_t{threads}_r{round_}.log"
                    results["img2dataset"].extend(
                        quiet(
                            run_img2dataset,
                            i2d_exe,
                            urls,
                            runs / "img2dataset",
                            threads,
                            options.samples_per_shard,
                            log_path,
                        )
                    )
            if not options.skip_ours:
                results["ours"].extend(
                    quiet(
                        run_ours,
                        urls,
                        str(runs / "ours"),
                        options.samples_per_shard,
                        options.master,
                        options.ours_args,
                        runs / f"ours_r{round_}.log",
                    )
                )
                if s3 is not None:
                    server_cpu = s3.cpu_seconds()
                    measured = quiet(
                        run_ours,
                        urls,
                        f"s3://{bucket}/ours",
                        options.samples_per_shard,
                        options.master,
                        options.ours_args,
                        runs / f"ours_s3_r{round_}.log",
                    )
                    # The S3 server shares this machine's cores: how much of them it took.
                    measured[0]["s3_server_cpu_seconds"] = round(s3.cpu_seconds() - server_cpu, 2)
                    results["ours_s3"].extend(measured)
            if not options.skip_floor:
                for run in quiet(convert_rates, files, cpus):
                    results["process_image" if run["method"] == "process_image" else "cpu_floor"].append(run)
    finally:
        nginx.stop()
        if s3 is not None:
            s3.stop()
    if options.profile_images and not options.skip_floor:
        results["process_image_ms"] = stage_profile(files[: options.profile_images])

    results["img2dataset_best"] = best_run(results["img2dataset"])
    results["ours_best"] = best_run(results["ours"])
    results["ours_s3_best"] = best_run(results["ours_s3"])
    # The floor is the faster of the floors on these images (best round of each).
    results["cpu_floor_by_method"] = {
        name: best_run([r for r in results["cpu_floor"] if r["method"] == name])
        for name in FLOORS
        if any(r["method"] == name for r in results["cpu_floor"])
    }
    results["cpu_floor_best"] = best_run(list(results["cpu_floor_by_method"].values()))
    results["process_image_best"] = best_run(results["process_image"])
    results["ratios"] = ratios_of(results)
    results["targets"] = {"ours_vs_img2dataset": TARGET_VS_I2D, "ours_vs_cpu_floor": TARGET_VS_FLOOR}
    out = work / "download_results.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    log.info("results written to %s", out)
    print(format_report(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
