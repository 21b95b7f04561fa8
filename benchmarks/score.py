"""Score throughput on the CPU: our Spark job against a naive loop and the model-only limit.

    .venv/bin/python benchmarks/score.py [--images 2000] [--model ViT-B-32] [--batch-size 64]

One run, same model, same weights, same batch size, CPU only (see docs/benchmarks.md, "Score"):

1. builds (once, cached under benchmarks/_work/score/) a dataset of raw shards: a synthetic world
   of --images pictures served on 127.0.0.1 and fetched with ``spark-submit jobs/download.py``
   (500 samples per shard, images stored at 256 px), plus a randomly initialised checkpoint of
   --model (throughput does not depend on the weight values);
2. probes the Python workers of local[2] and local[1]: torch intra-op threads and OMP_NUM_THREADS
   (Spark sets OMP_NUM_THREADS = spark.task.cpus in its Python workers, so torch follows it);
3. model-only limit: encode_image + encode_text + cosine on tensors made beforehand (one real
   batch preprocessed and tokenized once), in this process with torch threads = all cores;
4. naive loop: one Python thread, the same tars read in order, per batch PIL decode + the
   model's own open_clip preprocess + tokenize + the same forward; torch threads = all cores;
5. ``spark-submit jobs/score.py --overwrite`` for every --masters entry (default: local[2], the
   target; local[1]; local[2] with spark.task.cpus=2, i.e. one task at a time with 2 torch
   threads): the in-job rate from scores/_summary.json and the wall rate of spark-submit;
6. prints the table with the ratios (target: ours / model-only >= 0.85) and writes
   benchmarks/_work/score_results.json.

Every measurement runs under ``torch.inference_mode()``. Nothing leaves the machine: the only
network traffic is the download job fetching from a server on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import platform
import shutil
import tarfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "benchmarks" / "_work" / "score"
RESULTS = ROOT / "benchmarks" / "_work" / "score_results.json"
SAMPLES_PER_SHARD = 500
TARGET_VS_MODEL = 0.85

log = logging.getLogger("benchmarks.score")


# --------------------------------------------------------------------------- inputs


def build_dataset(images: int) -> Path:
    """Raw shards of a synthetic world of ``images`` pictures (cached: reruns reuse them)."""
    from pipeline.submit import run_job
    from pipeline.synthetic.server import WorldServer
    from pipeline.synthetic.world import WorldSpec, generate_world, write_url_lists

    dataset = WORK / f"dataset_{images}"
    marker = dataset / "_benchmark_complete.json"
    if marker.is_file():
        log.info("reusing dataset %s", dataset)
        return dataset
    world = WORK / f"world_{images}"
    if not (world / "world.parquet").is_file():
        generate_world(world, WorldSpec(images=images, seed=0, benchmark_images=0, planted_duplicates=0))
    if dataset.exists():
        shutil.rmtree(dataset)
    with WorldServer(world) as server:
        lists = write_url_lists(world, server.base_url, out=WORK / f"urls_{images}")
        started = time.perf_counter()
        run_job(
            "download",
            [
                "--urls",
                str(lists["parquet"]),
                "--dataset",
                str(dataset),
                "--allow-network",
                "127.0.0.1/32",
                "--samples-per-shard",
                str(SAMPLES_PER_SHARD),
            ],
        )
    log.info("downloaded %d images in %.1f s", images, time.perf_counter() - started)
    marker.write_text(json.dumps({"images": images, "samples_per_shard": SAMPLES_PER_SHARD}))
    return dataset


def make_checkpoint(model: str) -> Path:
    """A randomly initialised checkpoint of ``model`` (seed 0), written once."""
    import open_clip
    import torch

    from pipeline.score.model import register_configs
    from pipeline.train.contrastive import save_checkpoint

    path = WORK / f"{model}-random-seed0.pt"
    if not path.is_file():
        register_configs()
        torch.manual_seed(0)
        save_checkpoint(open_clip.create_model(model), path)
        log.info("wrote random-init checkpoint %s", path)
    return path


def read_samples(dataset: Path) -> list[tuple[bytes, str]]:
    """(image bytes, caption) of every image in the raw tars, in shard and tar order."""
    samples: list[tuple[bytes, str]] = []
    for tar_path in sorted((dataset / "raw").glob("*.tar")):
        samples.extend(_tar_samples(tar_path))
    return samples


def _tar_samples(tar_path: Path) -> list[tuple[bytes, str]]:
    images: dict[str, bytes] = {}
    captions: dict[str, str] = {}
    order: list[str] = []
    with tarfile.open(tar_path, mode="r|") as tar:
        for member in tar:
            key, _, ext = member.name.partition(".")
            handle = tar.extractfile(member)
            if handle is None:
                continue
            if ext in ("jpg", "webp"):
                images[key] = handle.read()
                order.append(key)
            elif ext == "txt":
                captions[key] = handle.read().decode("utf-8")
    return [(images[k], captions.get(k, "")) for k in order]


# --------------------------------------------------------------------------- measurements


def forward(loaded: Any, pixels: Any, tokens: Any) -> Any:
    """What the job computes per batch: normalised embeddings and their cosine."""
    image = loaded.model.encode_image(pixels, normalize=True)
    text = loaded.model.encode_text(tokens, normalize=True)
    return (image * text).sum(dim=1)


def model_only(loaded: Any, samples: list[tuple[bytes, str]], batch_size: int, batches: int) -> dict:
    """Forward passes on tensors made beforehand: the rate no loader can beat."""
    import torch
    from PIL import Image

    batch = (samples * (batch_size // max(1, len(samples)) + 1))[:batch_size]
    pixels = torch.stack([loaded.preprocess(Image.open(io.BytesIO(d)).convert("RGB")) for d, _ in batch])
    tokens = loaded.tokenizer([c for _, c in batch])
    with torch.inference_mode():
        forward(loaded, pixels, tokens)  # warm-up, not timed
        started = time.perf_counter()
        for _ in range(batches):
            forward(loaded, pixels, tokens)
        seconds = time.perf_counter() - started
    images = batches * batch_size
    log.info("model only: %d images in %.1f s", images, seconds)
    return {"images": images, "seconds": round(seconds, 3), "images_per_second": round(images / seconds, 2)}


def naive_loop(loaded: Any, dataset: Path, batch_size: int, limit: int) -> dict:
    """One thread: read the tars in order; per batch decode, preprocess, tokenize, forward."""
    import torch
    from PIL import Image

    def flush(batch: list[tuple[bytes, str]]) -> None:
        pixels = torch.stack(
            [loaded.preprocess(Image.open(io.BytesIO(data)).convert("RGB")) for data, _ in batch]
        )
        tokens = loaded.tokenizer([caption for _, caption in batch])
        forward(loaded, pixels, tokens)

    done = 0
    started = time.perf_counter()
    with torch.inference_mode():
        batch: list[tuple[bytes, str]] = []
        for tar_path in sorted((dataset / "raw").glob("*.tar")):
            for sample in _tar_samples(tar_path):
                batch.append(sample)
                if len(batch) == batch_size:
                    flush(batch)
                    done += len(batch)
                    batch = []
                if limit and done >= limit:
                    break
            if limit and done >= limit:
                break
        if batch and not (limit and done >= limit):
            flush(batch)
            done += len(batch)
    seconds = time.perf_counter() - started
    log.info("naive loop: %d images in %.1f s", done, seconds)
    return {"images": done, "seconds": round(seconds, 3), "images_per_second": round(done / seconds, 2)}


def preprocess_only(loaded: Any, samples: list[tuple[bytes, str]], batch_size: int) -> dict:
    """Decode + preprocess + tokenize of one batch, one thread: the data-loading cost per image."""
    from PIL import Image

    batch = samples[:batch_size]
    started = time.perf_counter()
    for data, _ in batch:
        loaded.preprocess(Image.open(io.BytesIO(data)).convert("RGB"))
    loaded.tokenizer([c for _, c in batch])
    seconds = time.perf_counter() - started
    return {"images": len(batch), "ms_per_image": round(1000 * seconds / max(1, len(batch)), 3)}


def probe_workers(master: str) -> list[dict]:
    """Torch threads and OMP_NUM_THREADS as the Python workers of ``master`` see them."""
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    import sys

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    spark = (
        SparkSession.builder.master(master)
        .appName("score-benchmark-probe")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .getOrCreate()
    )
    try:
        slots = int(master[len("local[") : -1]) if master.startswith("local[") else 2

        def probe(_: int) -> dict:
            import os as worker_os
            import time as worker_time

            import torch as worker_torch

            worker_time.sleep(1.0)  # keep the slots busy so every task gets its own worker
            return {
                "pid": worker_os.getpid(),
                "torch_threads": worker_torch.get_num_threads(),
                "OMP_NUM_THREADS": worker_os.environ.get("OMP_NUM_THREADS"),
            }

        return spark.sparkContext.parallelize(range(slots), slots).map(probe).collect()
    finally:
        spark.stop()


def score_job(
    dataset: Path, model: str, checkpoint: Path, batch_size: int, variant: str, extra: list
) -> dict:
    """``spark-submit jobs/score.py --overwrite``: in-job rate (summary) and wall rate.

    ``variant`` is a master, optionally followed by ``+KEY=VALUE`` Spark confs
    (``local[2]+spark.task.cpus=2``).
    """
    import subprocess
    import sys

    from pipeline.submit import spark_submit_command

    master, *confs = variant.split("+")
    args = ["--dataset", str(dataset), "--model", model, "--pretrained", str(checkpoint)]
    args += ["--batch-size", str(batch_size), "--device", "cpu", "--overwrite", *extra]
    command = spark_submit_command("score", args, master)
    for conf in reversed(confs):
        command[3:3] = ["--conf", conf]  # after "--master MASTER", as spark-submit options
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "SPARK_LOCAL_IP": "127.0.0.1"}
    log.info("running %s", " ".join(command))
    started = time.perf_counter()
    subprocess.run(command, env=env, check=True)
    wall = time.perf_counter() - started
    summary = json.loads((dataset / "scores" / "_summary.json").read_text())
    shards = [json.loads(p.read_text()) for p in sorted((dataset / "scores").glob("*_stats.json"))]
    scored = summary["scored_this_run"]
    log.info("score job %s: %d images, %.1f s in job, %.1f s wall", variant, scored, summary["seconds"], wall)
    return {
        "master": variant,
        "extra_args": extra,
        "images": scored,
        "job_seconds": summary["seconds"],
        "job_images_per_second": summary["samples_per_second"],
        "wall_seconds": round(wall, 2),
        "wall_images_per_second": round(scored / wall, 2),
        "shard_seconds": [s["seconds"] for s in shards],
    }


# --------------------------------------------------------------------------- report


def table(results: dict) -> str:
    limit = results["model_only"]["images_per_second"]
    naive = results.get("naive", {}).get("images_per_second")
    lines = [
        f"score throughput: {results['config']['model']}, batch {results['config']['batch_size']}, "
        f"{results['machine']['cpus']} CPU cores, {results['config']['images']} images",
        f"{'':46} {'images/s':>9} {'/model-only':>12} {'/naive':>8}",
    ]

    def row(name: str, rate: float | None) -> None:
        if rate is None:
            return
        vs_naive = f"{rate / naive:8.2f}" if naive else f"{'-':>8}"
        lines.append(f"{name:46} {rate:9.2f} {rate / limit:12.2f} {vs_naive}")

    row(f"model only ({results['machine']['torch_threads']} torch threads)", limit)
    row("naive loop (1 thread + torch)", naive)
    for job in results.get("jobs", []):
        row(f"ours {job['master']}, in job", job["job_images_per_second"])
        row(f"ours {job['master']}, spark-submit wall", job["wall_images_per_second"])
    if results.get("jobs"):
        best = results["jobs"][0]["job_images_per_second"] / limit
        verdict = "met" if best >= TARGET_VS_MODEL else "NOT met"
        lines.append(
            f"target ours ({results['jobs'][0]['master']}, in job) / model-only >= {TARGET_VS_MODEL}: "
            f"{best:.2f}, {verdict}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=2000, help="images in the dataset (cached per value)")
    parser.add_argument("--model", default="ViT-B-32", help="open_clip model, or corpusforge-tiny")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument(
        "--threads", type=int, default=os.cpu_count() or 1, help="torch threads of the in-process runs"
    )
    parser.add_argument(
        "--model-batches", type=int, default=0, help="timed batches of the model-only run (0: images/batch)"
    )
    parser.add_argument("--naive-images", type=int, default=0, help="images of the naive loop (0: all)")
    parser.add_argument(
        "--masters",
        default="local[2],local[1],local[2]+spark.task.cpus=2",
        help="comma-separated score-job runs: a master, optionally +KEY=VALUE Spark confs; the first is "
        "the target",
    )
    parser.add_argument("--job-args", default="", help="extra score-job options, e.g. '--loader-threads 1'")
    parser.add_argument("--skip-job", action="store_true", help="only the in-process measurements")
    parser.add_argument("--skip-naive", action="store_true")
    parser.add_argument("--skip-probe", action="store_true", help="do not probe the Spark workers' threads")
    args = parser.parse_args()

    from pipeline.logs import setup_logging

    setup_logging()
    import open_clip
    import torch

    from pipeline.score.model import load_model

    WORK.mkdir(parents=True, exist_ok=True)
    dataset = build_dataset(args.images)
    checkpoint = make_checkpoint(args.model)
    samples = read_samples(dataset)
    torch.set_num_threads(args.threads)
    results: dict[str, Any] = {
        "config": {
            "images": len(samples),
            "model": args.model,
            "pretrained": "random init (seed 0)",
            "batch_size": args.batch_size,
            "dataset": str(dataset.relative_to(ROOT)),
            "samples_per_shard": SAMPLES_PER_SHARD,
        },
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "open_clip": open_clip.__version__,
            "torch_threads": torch.get_num_threads(),
        },
    }
    if not args.skip_probe and not args.skip_job:
        results["spark_workers"] = {m: probe_workers(m) for m in ("local[2]", "local[1]")}
        log.info("spark python workers: %s", results["spark_workers"])

    loaded = load_model(args.model, str(checkpoint), "cpu")
    results["preprocess_one_thread"] = preprocess_only(loaded, samples, args.batch_size)
    batches = args.model_batches or max(1, len(samples) // args.batch_size)
    results["model_only"] = model_only(loaded, samples, args.batch_size, batches)
    if not args.skip_naive:
        results["naive"] = naive_loop(loaded, dataset, args.batch_size, args.naive_images)
    if not args.skip_job:
        results["jobs"] = [
            score_job(dataset, args.model, checkpoint, args.batch_size, master, args.job_args.split())
            for master in args.masters.split(",")
        ]
    limit = results["model_only"]["images_per_second"]
    results["ratios"] = {
        f"ours_{job['master']}_{kind}_vs_{ref}": round(job[f"{kind}_images_per_second"] / rate, 3)
        for job in results.get("jobs", [])
        for kind in ("job", "wall")
        for ref, rate in (("model_only", limit), ("naive", results.get("naive", {}).get("images_per_second")))
        if rate
    }
    RESULTS.write_text(json.dumps(results, indent=2))
    log.info("results in %s", RESULTS)
    print(table(results))


if __name__ == "__main__":
    main()
