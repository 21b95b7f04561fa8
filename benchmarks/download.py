"""Download throughput, side by side: img2dataset 1.47.0, our Spark job, and the CPU floor.

    .venv/bin/python benchmarks/download.py [--images 10000] [--repeat 1] [--skip-img2dataset]

One run (see docs/benchmarks.md, "Download"):

1. builds (once, cached under benchmarks/_work/corpus) a corpus of photo-like JPEGs, 400-2000 px on
   the long side with random aspect ratios, plus a URL list (parquet, columns URL and TEXT);
2. serves it from nginx on 127.0.0.1 (a free port, keep-alive on, access log off);
3. runs img2dataset 1.47.0 from its own venv (benchmarks/_work/img2dataset-venv, created on first use)
   with every --i2d-threads value and keeps the best;
4. runs ``spark-submit --master local[2] jobs/download.py`` (``--master`` to change) with the same
   output settings;
5. measures the CPU floor: pipeline.image.process_image over the same bytes from memory on all cores;
6. prints a table with the ratios and the targets, and writes benchmarks/_work/download_results.json.

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
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "benchmarks" / "_work"
VENV = ROOT / ".venv"
I2D_VERSION = "1.47.0"
I2D_CONSTRAINTS = ROOT / "benchmarks" / "img2dataset-constraints.txt"
CORPUS_VERSION = 1  # bump when the generator changes so cached corpora are rebuilt
TARGET_VS_I2D = 2.0
TARGET_VS_FLOOR = 0.7
# Environment of the img2dataset runs: no update checks, no telemetry, nothing but loopback traffic.
QUIET_ENV = {
    "NO_ALBUMENTATIONS_UPDATE": "1",
    "WANDB_MODE": "disabled",
    "WANDB_DISABLED": "true",
    "HF_HUB_OFFLINE": "1",
    "no_proxy": "127.0.0.1,localhost",
    "NO_PROXY": "127.0.0.1,localhost",
}

log = logging.getLogger("benchmarks.download")


# --------------------------------------------------------------------------- corpus


_NOISE: dict[int, Any] = {}
NOISE_SIDE = 2000
NOISE_SIGMAS = (3, 5, 7)


def _noise_tiles() -> dict[int, Any]:
    """Per-process grain images (mean 128), cropped per picture: far cheaper than fresh noise."""
    if not _NOISE:
        import numpy as np
        from PIL import Image

        rng = np.random.default_rng(12345)
        for sigma in NOISE_SIGMAS:
            grain = np.clip(128 + rng.normal(0, sigma, (NOISE_SIDE, NOISE_SIDE, 3)), 0, 255)
            _NOISE[sigma] = Image.fromarray(grain.astype(np.uint8))
    return _NOISE


def make_photo(index: int, seed: int) -> tuple[bytes, str, int, int]:
    """A photo-like JPEG: a synthetic scene, blurred, lit unevenly, textured and grainy.

    The blur, low- and mid-frequency shading and sensor-like grain give the JPEGs photo-like sizes
    (tens to hundreds of KB) instead of the few KB of flat synthetic drawings.
    """
    import numpy as np
    from PIL import Image, ImageChops, ImageFilter

    from pipeline.synthetic.scenes import random_scene, render

    rng = random.Random(seed * 1_000_003 + index)
    nrng = np.random.default_rng(seed * 1_000_003 + index)
    long_side = rng.randint(400, 2000)
    aspect = 2 ** rng.uniform(-1.0, 1.0)  # 1:2 .. 2:1
    if aspect >= 1:
        width, height = long_side, max(200, round(long_side / aspect))
    else:
        width, height = max(200, round(long_side * aspect)), long_side
    scene = random_scene(rng)
    image = render(scene, (width, height), rng)
    image = image.filter(ImageFilter.BoxBlur(rng.uniform(0.5, 2.0)))
    light = nrng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
    image = Image.blend(image, Image.fromarray(light).resize((width, height), Image.BICUBIC), 0.3)
    texture = nrng.integers(96, 160, (max(2, height // 24), max(2, width // 24), 3), dtype=np.uint8)
    image = ImageChops.add(image, Image.fromarray(texture).resize((width, height), Image.BILINEAR), 1.0, -128)
    x, y = rng.randint(0, NOISE_SIDE - width), rng.randint(0, NOISE_SIDE - height)
    grain = _noise_tiles()[rng.choice(NOISE_SIGMAS)].crop((x, y, x + width, y + height))
    image = ImageChops.add(image, grain, 1.0, -128)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=rng.randint(80, 92))
    return out.getvalue(), scene.caption, width, height


def _generate_one(job: tuple[int, int, str]) -> dict[str, Any]:
    index, seed, folder = job
    data, caption, width, height = make_photo(index, seed)
    path = Path(folder) / image_name(index)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return {"index": index, "caption": caption, "width": width, "height": height, "bytes": len(data)}


def image_name(index: int) -> str:
    return f"{index:06d}.jpg"


def build_corpus(corpus: Path, count: int, seed: int, processes: int) -> list[dict[str, Any]]:
    """Make sure ``corpus/images`` holds images 0..count-1; return their index entries.

    The index (``corpus/index.json``) records every generated image; a rerun generates only the
    images it lacks, so asking for more images than last time extends the corpus.
    """
    images = corpus / "images"
    images.mkdir(parents=True, exist_ok=True)
    index_path = corpus / "index.json"
    entries: dict[int, dict[str, Any]] = {}
    if index_path.exists():
        saved = json.loads(index_path.read_text())
        if saved.get("version") == CORPUS_VERSION and saved.get("seed") == seed:
            entries = {e["index"]: e for e in saved["images"]}
        else:
            log.info("corpus generator or seed changed: regenerating")
    missing = [i for i in range(count) if i not in entries or not (images / image_name(i)).exists()]
    if missing:
        log.info("generating %d of %d images with %d processes", len(missing), count, processes)
        started = time.time()
        ctx = multiprocessing.get_context("fork")
        with ctx.Pool(processes) as pool:
            jobs = [(i, seed, str(images)) for i in missing]
            for done, entry in enumerate(pool.imap_unordered(_generate_one, jobs, chunksize=16), 1):
                entries[entry["index"]] = entry
                if done % 1000 == 0:
                    log.info("  %d/%d images (%.0f s)", done, len(missing), time.time() - started)
        index_path.write_text(
            json.dumps(
                {"version": CORPUS_VERSION, "seed": seed, "images": [entries[i] for i in sorted(entries)]}
            )
        )
        log.info("generated %d images in %.0f s", len(missing), time.time() - started)
    else:
        log.info("corpus cached: %d images in %s", count, images)
    chosen = [entries[i] for i in range(count)]
    sizes = sorted(e["bytes"] for e in chosen)
    log.info(
        "corpus: %d images, %.0f MB, JPEG size median %.0f KB (p10 %.0f KB, p90 %.0f KB), mean %.2f MP",
        count,
        sum(sizes) / 1e6,
        sizes[len(sizes) // 2] / 1024,
        sizes[len(sizes) // 10] / 1024,
        sizes[len(sizes) * 9 // 10] / 1024,
        sum(e["width"] * e["height"] for e in chosen) / count / 1e6,
    )
    return chosen


def write_url_list(path: Path, entries: list[dict[str, Any]], port: int) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    urls = [f"http://127.0.0.1:{port}/images/{image_name(e['index'])}" for e in entries]
    pq.write_table(pa.table({"URL": urls, "TEXT": [e["caption"] for e in entries]}), path)


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


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Nginx:
    """nginx in the foreground (``daemon off``) on 127.0.0.1, stopped by ``stop()``."""

    def __init__(self, root: Path, prefix: Path, workers: int) -> None:
        self.root, self.prefix, self.workers = root, prefix, workers
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, probe_path: str) -> None:
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
        deadline = time.time() + 15
        while True:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode() if self.process.stderr else ""
                raise RuntimeError(f"nginx exited with {self.process.returncode}: {err.strip()}")
            try:
                with _loopback_opener().open(url, timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            if time.time() > deadline:
                self.stop()
                raise RuntimeError(f"nginx did not serve {url} within 15 s; see {self.prefix}/error.log")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGQUIT)  # graceful shutdown of master and workers
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        log.info("nginx stopped")


def _cpu_times() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine from /proc/stat (0, 0 where there is none)."""
    try:
        fields = [float(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return 0.0, 0.0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)  # idle + iowait
    return sum(fields) - idle, sum(fields)


def _busy_since(start: tuple[float, float]) -> float | None:
    """Share of all cores busy (any process, nginx included) since ``start``."""
    busy, total = _cpu_times()
    return round((busy - start[0]) / (total - start[1]), 3) if total > start[1] else None


def wait_for_quiet(max_wait: float, threshold: float = 0.15) -> float | None:
    """Wait (up to ``max_wait`` s) until other processes leave the cores idle; return the last busy share.

    On a shared machine another user's tests or builds skew every number, so each measurement
    starts on a quiet machine where possible, and the background load is recorded with it.
    """
    deadline = time.time() + max_wait
    warned = False
    while True:
        start = _cpu_times()
        time.sleep(2.0)
        busy = _busy_since(start)
        if busy is None or busy < threshold:
            return busy
        if time.time() >= deadline:
            log.warning("machine still %.0f%% busy with other work: this measurement is skewed", 100 * busy)
            return busy
        if not warned:
            log.warning("machine %.0f%% busy with other work: waiting up to %.0f s", 100 * busy, max_wait)
            warned = True


def _loopback_opener() -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never through a proxy


# --------------------------------------------------------------------------- img2dataset


def ensure_img2dataset(venv: Path) -> Path:
    """Create the img2dataset venv on first use; return its ``img2dataset`` executable.

    img2dataset 1.47.0's dependencies pull no torch (the largest are opencv-python-headless, scipy,
    pandas, pyarrow and wandb, ~0.8 GB in all), so a plain install works; the constraints file pins
    the versions this benchmark was measured with.
    """
    exe = venv / "bin" / "img2dataset"
    python = venv / "bin" / "python"
    if exe.exists() and _i2d_version(python) == I2D_VERSION:
        return exe
    log.info("creating %s with img2dataset==%s (one-off, a few minutes)", venv, I2D_VERSION)
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)  # based on the base interpreter
    install = [str(python), "-m", "pip", "install", "--quiet", f"img2dataset=={I2D_VERSION}"]
    if I2D_CONSTRAINTS.exists():
        install += ["-c", str(I2D_CONSTRAINTS)]
    subprocess.run(install, check=True, env={**os.environ, **QUIET_ENV})
    if _i2d_version(python) != I2D_VERSION:
        raise RuntimeError(f"img2dataset {I2D_VERSION} did not install into {venv}")
    return exe


def _i2d_version(python: Path) -> str | None:
    if not python.exists():
        return None
    probe = "import importlib.metadata as m; print(m.version('img2dataset'))"
    result = subprocess.run([str(python), "-c", probe], capture_output=True, text=True)
    return result.stdout.strip() if result.returncode == 0 else None


def run_img2dataset(
    exe: Path, urls: Path, output: Path, threads: int, samples_per_shard: int, logfile: Path
) -> dict[str, Any]:
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
        "--image_size=256",
        "--resize_mode=border",
        "--encode_format=jpg",
        "--encode_quality=95",
        f"--number_sample_per_shard={samples_per_shard}",
        "--distributor=multiprocessing",
        "--enable_wandb=False",
        "--retries=0",
        "--timeout=20",
    ]
    log.info("img2dataset, %d threads: %s", threads, " ".join(cmd))
    started, cpu = time.perf_counter(), _cpu_times()
    with logfile.open("w") as out:
        rc = subprocess.run(
            cmd, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **QUIET_ENV}
        ).returncode
    wall, busy = time.perf_counter() - started, _busy_since(cpu)
    if rc != 0:
        raise RuntimeError(f"img2dataset exited with {rc}; see {logfile}")
    stats = [json.loads(p.read_text()) for p in sorted(output.glob("*_stats.json"))]
    successes = sum(s.get("successes", 0) for s in stats)
    count = sum(s.get("count", 0) for s in stats)
    errors: dict[str, int] = {}
    for s in stats:
        for message, n in (s.get("status_dict") or {}).items():
            if message != "success":
                errors[message] = errors.get(message, 0) + n
    result = {
        "threads": threads,
        "wall_seconds": round(wall, 2),
        "cpu_busy": busy,
        "rows": count,
        "successes": successes,
        "images_per_second": round(successes / wall, 2),
        "shards": len(stats),
        "errors": errors,
    }
    log.info(
        "img2dataset, %d threads: %d/%d in %.1f s = %.1f images/s",
        threads,
        successes,
        count,
        wall,
        result["images_per_second"],
    )
    return result


# --------------------------------------------------------------------------- our job


def run_ours(
    urls: Path, dataset: Path, samples_per_shard: int, master: str, extra: list[str], logfile: Path
) -> dict[str, Any]:
    if dataset.exists():
        shutil.rmtree(dataset)
    cmd = [
        str(VENV / "bin" / "spark-submit"),
        "--master",
        master,
        str(ROOT / "jobs" / "download.py"),
        "--urls",
        str(urls),
        "--dataset",
        str(dataset),
        "--allow-network",
        "127.0.0.1/32",
        "--image-size",
        "256",
        "--resize-mode",
        "border",
        "--encode-format",
        "jpg",
        "--encode-quality",
        "95",
        "--samples-per-shard",
        str(samples_per_shard),
        *extra,
    ]
    env = {
        **os.environ,
        "PYSPARK_PYTHON": str(VENV / "bin" / "python"),
        "PYSPARK_DRIVER_PYTHON": str(VENV / "bin" / "python"),
        "PATH": f"{VENV / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        "no_proxy": "127.0.0.1,localhost",
        "NO_PROXY": "127.0.0.1,localhost",
        "SPARK_LOCAL_IP": "127.0.0.1",  # driver and executor talk over loopback only
    }
    log.info("ours: %s", " ".join(cmd))
    started, cpu = time.perf_counter(), _cpu_times()
    with logfile.open("w") as out:
        rc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT).returncode
    wall, busy = time.perf_counter() - started, _busy_since(cpu)
    if rc != 0:
        raise RuntimeError(f"spark-submit exited with {rc}; see {logfile}")
    summary = json.loads((dataset / "raw" / "_summary.json").read_text())
    result = {
        "wall_seconds": round(wall, 2),
        "cpu_busy": busy,
        "job_seconds": summary.get("seconds"),
        "rows": summary.get("rows"),
        "successes": summary.get("successes"),
        "images_per_second": round(summary.get("successes", 0) / wall, 2),
        "job_images_per_second": summary.get("images_per_second"),
        # ingest / duplicates / download, where the job reports them; the rest of the wall time is
        # Spark start-up and shutdown.
        "phase_seconds": summary.get("phase_seconds"),
        "outside_job_seconds": round(wall - (summary.get("seconds") or 0), 2),
        "shards": summary.get("shards"),
        "errors": summary.get("errors", {}),
        "master": master,
        "args": extra,
    }
    log.info(
        "ours: %d/%d in %.1f s wall (%.1f s in job) = %.1f images/s wall, %s images/s in job",
        result["successes"],
        result["rows"],
        wall,
        result["job_seconds"] or 0,
        result["images_per_second"],
        result["job_images_per_second"],
    )
    return result


# --------------------------------------------------------------------------- CPU floor


_FLOOR_DATA: list[bytes] = []


def _floor_one(i: int) -> tuple[int, float]:
    """(1 if stored else 0, CPU seconds of this call): CPU time is what other load hardly skews."""
    from pipeline.image import ImageOptions, ResizeMode, process_image

    options = ImageOptions(image_size=256, resize_mode=ResizeMode.BORDER, encode_quality=95)
    started = time.thread_time()
    try:
        process_image(_FLOOR_DATA[i], options)
    except Exception:  # a SampleError counts as a failure, like in the job
        return 0, time.thread_time() - started
    return 1, time.thread_time() - started


def _floor_warm(_: int) -> int:
    import pipeline.image  # noqa: F401  (import cost outside the timed part)

    return os.getpid()


def cpu_floor(files: list[Path], processes: int) -> dict[str, Any]:
    """process_image over bytes already in memory: workers inherit them by fork, nothing is copied."""
    _FLOOR_DATA[:] = [p.read_bytes() for p in files]
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(processes) as pool:
        pool.map(_floor_warm, range(processes * 4))
        started, cpu = time.perf_counter(), _cpu_times()
        outcomes = list(pool.imap_unordered(_floor_one, range(len(files)), chunksize=8))
        seconds, busy = time.perf_counter() - started, _busy_since(cpu)
    _FLOOR_DATA.clear()
    ok = sum(o for o, _ in outcomes)
    cpu_seconds = sum(c for _, c in outcomes)
    result = {
        "processes": processes,
        "seconds": round(seconds, 2),
        "cpu_busy": busy,
        "successes": ok,
        "images_per_second": round(ok / seconds, 2),
        "cpu_ms_per_image": round(1000 * cpu_seconds / len(files), 3),
        # What Pool(processes) reaches on otherwise idle cores: hardly skewed by other users' load.
        "images_per_second_from_cpu_time": round(ok * processes / cpu_seconds, 2) if cpu_seconds else None,
    }
    log.info(
        "CPU floor: %d images in %.1f s on %d processes = %.1f images/s (%.2f CPU-ms/image: %s/s idle)",
        ok,
        seconds,
        processes,
        result["images_per_second"],
        result["cpu_ms_per_image"],
        result["images_per_second_from_cpu_time"],
    )
    return result


def stage_profile(files: list[Path]) -> dict[str, float] | None:
    """Milliseconds per image of each step of process_image, single core (internal API, best effort)."""
    try:
        import hashlib

        from pipeline.image.decode import decode_rgb, open_checked
        from pipeline.image.encode import encode
        from pipeline.image.options import ImageOptions, ResizeMode
        from pipeline.image.phash import phash
        from pipeline.image.resize import resize
    except ImportError as exc:
        log.warning("no stage profile: %s", exc)
        return None
    options = ImageOptions(image_size=256, resize_mode=ResizeMode.BORDER, encode_quality=95)
    totals = dict.fromkeys(("open", "decode", "resize", "encode", "sha256", "phash"), 0.0)
    n = 0
    for path in files:
        data = path.read_bytes()
        t0 = time.perf_counter()
        image = open_checked(data, options)
        t1 = time.perf_counter()
        rgb, original = decode_rgb(image, options)
        t2 = time.perf_counter()
        stored = resize(rgb, original, options)
        t3 = time.perf_counter()
        encode(stored, options)
        t4 = time.perf_counter()
        hashlib.sha256(data).hexdigest()
        t5 = time.perf_counter()
        phash(stored)
        t6 = time.perf_counter()
        for key, dt in zip(totals, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5), strict=True):
            totals[key] += dt
        n += 1
    profile = {key: round(1000 * value / n, 3) for key, value in totals.items()}
    profile["total"] = round(sum(profile.values()), 3)
    log.info("process_image per image, single core (ms): %s", profile)
    return profile


# --------------------------------------------------------------------------- report


def format_table(results: dict[str, Any]) -> str:
    best_i2d = results.get("img2dataset_best")
    ours = results.get("ours_best")
    floor = results.get("cpu_floor_best")
    rows: list[tuple[str, str, str]] = []
    if best_i2d:
        rows.append(
            (
                f"img2dataset {I2D_VERSION} ({best_i2d['threads']} threads x 2 processes)",
                f"{best_i2d['images_per_second']:.1f}",
                f"{best_i2d['wall_seconds']:.1f} s wall, {_pct(best_i2d['cpu_busy'])} CPU busy",
            )
        )
    if ours:
        rows.append(
            (
                f"ours, spark-submit {ours.get('master', 'local[2]')} (wall)",
                f"{ours['images_per_second']:.1f}",
                f"{ours['wall_seconds']:.1f} s wall, {_pct(ours['cpu_busy'])} CPU busy",
            )
        )
        rows.append(
            (
                "ours, in job (_summary.json)",
                f"{ours['job_images_per_second']:.1f}",
                f"{ours['job_seconds']:.1f} s in job",
            )
        )
    if floor:
        rows.append(
            (
                "CPU floor (process_image, Pool(2))",
                f"{floor['images_per_second']:.1f}",
                f"{floor['seconds']:.1f} s, {_pct(floor['cpu_busy'])} CPU busy",
            )
        )
        if floor.get("images_per_second_from_cpu_time"):
            rows.append(
                (
                    "CPU floor from CPU time (cores / CPU-s per image)",
                    f"{floor['images_per_second_from_cpu_time']:.1f}",
                    f"{floor['cpu_ms_per_image']:.2f} CPU-ms/image",
                )
            )
    width = max(len(r[0]) for r in rows) if rows else 10
    lines = [f"Download benchmark: {results['images']} images, {results['cpus']} CPUs", ""]
    lines.append(f"  {'':<{width}}  {'images/s':>9}  time")
    lines += [f"  {name:<{width}}  {ips:>9}  {note}" for name, ips, note in rows]
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
            f"  (in-job / CPU floor  {100 * ratios['ours_in_job_vs_cpu_floor']:5.1f}%, "
            f"in-job / img2dataset {ratios['ours_in_job_vs_img2dataset']:.2f}x)"
        )
    return "\n".join(lines)


def _pct(share: float | None) -> str:
    return "?" if share is None else f"{100 * share:.0f}%"


def best(runs: list[dict[str, Any]]) -> dict[str, Any] | None:
    return max(runs, key=lambda r: r["images_per_second"]) if runs else None


def main(argv: list[str] | None = None) -> int:
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
    args = p.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S"
    )
    if args.images < 1 or args.repeat < 1:
        p.error("--images and --repeat must be >= 1")

    work: Path = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    cpus = os.cpu_count() or 1
    if not (VENV / "bin" / "spark-submit").exists() and not args.skip_ours:
        log.error("%s not found: create the project venv first (make venv)", VENV / "bin" / "spark-submit")
        return 1
    i2d_exe = None if args.skip_img2dataset else ensure_img2dataset(work / "img2dataset-venv")

    corpus = work / "corpus"
    entries = build_corpus(corpus, args.images, args.seed, processes=cpus)
    files = [corpus / "images" / image_name(e["index"]) for e in entries]
    results: dict[str, Any] = {
        "images": args.images,
        "cpus": cpus,
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "python": platform.python_version(),
        "samples_per_shard": args.samples_per_shard,
        "corpus_bytes": sum(e["bytes"] for e in entries),
        "corpus_megapixels_mean": round(
            sum(e["width"] * e["height"] for e in entries) / len(entries) / 1e6, 3
        ),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "img2dataset": [],
        "ours": [],
        "cpu_floor": [],
    }
    runs = work / "runs"
    runs.mkdir(exist_ok=True)
    nginx = Nginx(corpus, work / "nginx", args.nginx_workers)
    thread_counts = [int(t) for t in args.i2d_threads.split(",") if t.strip()]

    def quiet(measure: Any, *measure_args: Any) -> dict[str, Any]:
        background = wait_for_quiet(args.wait_quiet)
        result = measure(*measure_args)
        result["background_busy_before"] = background
        return result

    try:
        nginx.start(f"images/{image_name(entries[0]['index'])}")
        urls = work / f"urls_{args.images}.parquet"
        write_url_list(urls, entries, nginx.port)
        for round_ in range(1, args.repeat + 1):
            log.info("round %d of %d", round_, args.repeat)
            if i2d_exe is not None:
                for threads in thread_counts:
                    log_path = runs / f"img2dataset_t{threads}_r{round_}.log"
                    results["img2dataset"].append(
                        quiet(
                            run_img2dataset,
                            i2d_exe,
                            urls,
                            runs / "img2dataset",
                            threads,
                            args.samples_per_shard,
                            log_path,
                        )
                    )
            if not args.skip_ours:
                log_path = runs / f"ours_r{round_}.log"
                results["ours"].append(
                    quiet(
                        run_ours,
                        urls,
                        runs / "ours",
                        args.samples_per_shard,
                        args.master,
                        args.ours_args.split(),
                        log_path,
                    )
                )
            if not args.skip_floor:
                results["cpu_floor"].append(quiet(cpu_floor, files, cpus))
    finally:
        nginx.stop()
    if args.profile_images and not args.skip_floor:
        results["process_image_ms"] = stage_profile(files[: args.profile_images])

    results["img2dataset_best"] = best(results["img2dataset"])
    results["ours_best"] = best(results["ours"])
    results["cpu_floor_best"] = best(results["cpu_floor"])
    i2d, ours, floor = results["img2dataset_best"], results["ours_best"], results["cpu_floor_best"]
    ratios: dict[str, float] = {}
    if ours and i2d:
        ratios["ours_vs_img2dataset"] = round(ours["images_per_second"] / i2d["images_per_second"], 3)
        ratios["ours_in_job_vs_img2dataset"] = round(
            ours["job_images_per_second"] / i2d["images_per_second"], 3
        )
    if ours and floor:
        ratios["ours_vs_cpu_floor"] = round(ours["images_per_second"] / floor["images_per_second"], 3)
        ratios["ours_in_job_vs_cpu_floor"] = round(
            ours["job_images_per_second"] / floor["images_per_second"], 3
        )
    results["ratios"] = ratios
    results["targets"] = {"ours_vs_img2dataset": TARGET_VS_I2D, "ours_vs_cpu_floor": TARGET_VS_FLOOR}
    out = work / "download_results.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    log.info("results written to %s", out)
    print(format_table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
