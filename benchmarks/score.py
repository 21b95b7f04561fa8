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
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from harness.jobs import run_spark_job
from harness.paths import WORK as ALL_WORK
from harness.paths import shown
from harness.table import text_table

from pipeline.dataset import Dataset
from pipeline.logs import setup_logging

WORK = ALL_WORK / "score"
RESULTS = ALL_WORK / "score_results.json"
SAMPLES_PER_SHARD = 500
TARGET_VS_MODEL = 0.85
IMAGE_EXTS = ("jpg", "webp")

log = logging.getLogger("benchmarks.score")


# --------------------------------------------------------------------------- inputs


def build_dataset(images: int) -> Path:
    """Raw shards of a synthetic world of ``images`` pictures (cached: reruns reuse them)."""
    from pipeline.synthetic.download import download_world
    from pipeline.synthetic.world import WorldSpec, generate_world

    dataset = WORK / f"dataset_{images}"
    if Dataset(str(dataset)).raw.summary() is not None:  # written last by a finished download
        log.info("reusing dataset %s", dataset)
        return dataset
    world = WORK / f"world_{images}"
    if not (world / "world.parquet").is_file():
        generate_world(world, WorldSpec(images=images, seed=0, benchmark_images=0, planted_duplicates=0))
    if dataset.exists():
        shutil.rmtree(dataset)
    started = time.perf_counter()
    download_world(world, dataset, ["--samples-per-shard", str(SAMPLES_PER_SHARD)])
    log.info("downloaded %d images in %.1f s", images, time.perf_counter() - started)
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


def iter_samples(dataset: Path) -> Iterator[tuple[bytes, str]]:
    """(image bytes, caption) of every stored sample, in raw shard and tar order."""
    wanted = {*IMAGE_EXTS, "txt"}
    for shard in Dataset(str(dataset)).raw.complete_shards():
        for sample in shard.tar.samples(lambda ext: ext in wanted):
            image = next((sample.members[e] for e in IMAGE_EXTS if e in sample.members), None)
            if image is not None:
                yield image, sample.members.get("txt", b"").decode("utf-8")


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
        for sample in iter_samples(dataset):
            batch.append(sample)
            if len(batch) == batch_size:
                flush(batch)
                done += len(batch)
                batch = []
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
    dataset: Path, model: str, checkpoint: Path, batch_size: int, variant: str, extra: tuple[str, ...]
) -> dict:
    """``spark-submit jobs/score.py --overwrite``: in-job rate (summary) and wall rate.

    ``variant`` is a master, optionally followed by ``+KEY=VALUE`` Spark confs
    (``local[2]+spark.task.cpus=2``).
    """
    master, *confs = variant.split("+")
    args = ["--dataset", str(dataset), "--model", model, "--pretrained", str(checkpoint)]
    args += ["--batch-size", str(batch_size), "--device", "cpu", "--overwrite", *extra]
    run = run_spark_job("score", args, master=master, confs=confs)
    scores = Dataset(str(dataset)).scores
    summary = scores.summary()
    if summary is None:
        raise RuntimeError(f"the score job wrote no summary in {scores.display()}")
    shards = [scores.shard(i).stats() for i in scores.complete_indices()]
    scored = summary["scored_this_run"]
    log.info(
        "score job %s: %d images, %.1f s in job, %.1f s wall", variant, scored, summary["seconds"], run.wall_s
    )
    return {
        "master": variant,
        "extra_args": list(extra),
        "images": scored,
        "job_seconds": summary["seconds"],
        "job_images_per_second": summary["samples_per_second"],
        "wall_seconds": run.wall_s,
        "wall_images_per_second": round(scored / run.wall_s, 2),
        "shard_seconds": [s["seconds"] for s in shards],
    }


# --------------------------------------------------------------------------- report


def table(results: dict) -> str:
    """The result table: images/s of each run, against the model-only limit and the naive loop."""
    limit = results["model_only"]["images_per_second"]
    naive = results.get("naive", {}).get("images_per_second")
    title = (
        f"score throughput: {results['config']['model']}, batch {results['config']['batch_size']}, "
        f"{results['machine']['cpus']} CPU cores, {results['config']['images']} images"
    )
    rates = [
        (f"model only ({results['machine']['torch_threads']} torch threads)", limit),
        ("naive loop (1 thread + torch)", naive),
    ]
    for job in results.get("jobs", []):
        rates.append((f"ours {job['master']}, in job", job["job_images_per_second"]))
        rates.append((f"ours {job['master']}, spark-submit wall", job["wall_images_per_second"]))
    rows = [
        (name, f"{rate:.2f}", f"{rate / limit:.2f}", f"{rate / naive:.2f}" if naive else "-")
        for name, rate in rates
        if rate is not None
    ]
    lines = [title, text_table(("", "images/s", "/model-only", "/naive"), rows)]
    if results.get("jobs"):
        best = results["jobs"][0]["job_images_per_second"] / limit
        verdict = "met" if best >= TARGET_VS_MODEL else "NOT met"
        lines.append(
            f"target ours ({results['jobs'][0]['master']}, in job) / model-only >= {TARGET_VS_MODEL}: "
            f"{best:.2f}, {verdict}"
        )
    return "\n".join(lines)


@dataclass(frozen=True)
class Options:
    """The command line."""

    images: int
    model: str
    batch_size: int
    threads: int
    model_batches: int
    naive_images: int
    masters: tuple[str, ...]
    job_args: tuple[str, ...]
    skip_job: bool
    skip_naive: bool
    skip_probe: bool


def parse_options(argv: list[str] | None = None) -> Options:
    """Options from the command line."""
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
    a = parser.parse_args(argv)
    return Options(
        images=a.images,
        model=a.model,
        batch_size=a.batch_size,
        threads=a.threads,
        model_batches=a.model_batches,
        naive_images=a.naive_images,
        masters=tuple(m for m in a.masters.split(",") if m.strip()),
        job_args=tuple(a.job_args.split()),
        skip_job=a.skip_job,
        skip_naive=a.skip_naive,
        skip_probe=a.skip_probe,
    )


def main(argv: list[str] | None = None) -> None:
    """Build the inputs (cached), run the measurements asked for, print and save the table."""
    args = parse_options(argv)
    setup_logging()
    import open_clip
    import torch

    from pipeline.score.model import load_model

    WORK.mkdir(parents=True, exist_ok=True)
    dataset = build_dataset(args.images)
    checkpoint = make_checkpoint(args.model)
    samples = list(iter_samples(dataset))
    torch.set_num_threads(args.threads)
    results: dict[str, Any] = {
        "config": {
            "images": len(samples),
            "model": args.model,
            "pretrained": "random init (seed 0)",
            "batch_size": args.batch_size,
            "dataset": shown(dataset),
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
            score_job(dataset, args.model, checkpoint, args.batch_size, master, args.job_args)
            for master in args.masters
        ]
    limit = results["model_only"]["images_per_second"]
    results["ratios"] = {
        f"ours_{job['master']}_{kind}_vs_{ref}": round(job[f"{kind}_images_per_second"] / rate, 3)
        for job in results.get("jobs", [])
        for kind in ("job", "wall")
        for ref, rate in (("model_only", limit), ("naive", results.get("naive", {}).get("images_per_second")))
        if rate
    }
    results["options"] = asdict(args)
    RESULTS.write_text(json.dumps(results, indent=2))
    log.info("results in %s", RESULTS)
    print(table(results))


if __name__ == "__main__":
    main()
