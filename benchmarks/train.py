"""Training throughput on the CPU: ``corpusforge train`` against ``open_clip_train`` 3.x.

    .venv/bin/python benchmarks/train.py [--shards 8] [--per-shard 256] [--batch-size 64] [--repeats 1]

Same shards, same model config (corpusforge-tiny), same batch size, fp32, CPU only:

1. writes (once, cached under benchmarks/_work/train/) --shards WebDataset tars of synthetic
   scenes (--image-side px JPEGs, as final shards hold them) with sizes.json;
2. creates (once) the venv benchmarks/_work/open_clip_train-venv with torch 2.14.1 /
   torchvision 0.29.1 (from the local wheel cache), open-clip-torch 3.3.0 (which ships
   open_clip_train) and the training dependencies it pins (webdataset<=0.2.86, pandas,
   braceexpand, fsspec);
3. per round, runs each trainer for 1 and for 2 epochs: ``corpusforge train``, the same with
   ``--no-jpeg-draft`` (every JPEG decoded at full size, as open_clip_train does) and
   open_clip_train's ``main`` (through benchmarks/open_clip_train_tiny.py, which registers the
   bundled config), each with --workers loader processes and OMP_NUM_THREADS=--threads;
4. reports two rates per trainer:
   - samples/s (wall): the training steps between the first and the last log line (start-up,
     worker spawn and the first --log-every steps excluded the same way for both): ours from the
     timestamps in metrics.jsonl, open_clip_train from its per-interval ``Batch (t)`` averages;
   - samples per CPU-second: one epoch's samples over the CPU seconds (user + system, training
     process and loader workers, from getrusage) that the 2-epoch run spent beyond the 1-epoch
     run, so start-up and teardown cancel out. On a shared machine this is the robust number:
     wall rates move with other people's load, CPU seconds per sample much less;
5. prints the table with the ratios (target: ours / open_clip_train >= 1.0) and writes
   benchmarks/_work/train_results.json; logs of every run are in benchmarks/_work/train/runs/.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from harness.paths import BENCHMARKS, REPO, WORK, shown
from harness.table import text_table

from pipeline.dataset import final_shard_name
from pipeline.logs import setup_logging
from testkit.scene_shards import write_scene_shards

VENV = WORK / "open_clip_train-venv"
MODEL_CONFIGS = REPO / "pipeline" / "score" / "model_configs"
OC_PACKAGES = [
    "open-clip-torch==3.3.0",
    "webdataset>=0.2.5,<=0.2.86",
    "pandas",
    "braceexpand",
    "fsspec",
]
BATCH_TIME = re.compile(r"Batch \(t\): ([0-9.]+),")

log = logging.getLogger("benchmarks.train")


@dataclass(frozen=True)
class Options:
    """The command line: the same settings for both trainers."""

    shards: int
    per_shard: int
    image_side: int
    batch_size: int
    workers: int
    threads: int
    log_every: int
    repeats: int

    @property
    def samples(self) -> int:
        """Samples in one epoch."""
        return self.shards * self.per_shard

    @property
    def steps_per_epoch(self) -> int:
        return self.samples // self.batch_size


def parse_args(argv: list[str] | None = None) -> Options:
    """Options from the command line."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shards", type=int, default=8, help="training shards")
    p.add_argument("--per-shard", type=int, default=256, help="samples per shard")
    p.add_argument("--image-side", type=int, default=256, help="stored image size in px")
    p.add_argument("--batch-size", type=int, default=64, help="batch size of both trainers")
    p.add_argument("--workers", type=int, default=2, help="data loader processes of both trainers")
    p.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS of both training processes")
    p.add_argument("--log-every", type=int, default=4, help="steps between log lines (both)")
    p.add_argument(
        "--repeats", type=int, default=1, help="rounds (each runs every trainer for 1 and 2 epochs)"
    )
    a = p.parse_args(argv)
    if a.shards * a.per_shard < a.batch_size:
        p.error("--shards x --per-shard must hold at least one batch")
    return Options(**vars(a))


def make_shards(args: Options) -> str:
    """The shards' brace pattern; written once (cached under benchmarks/_work/train/)."""
    folder = WORK / "train" / f"shards-{args.shards}x{args.per_shard}-{args.image_side}px"
    if not (folder / "sizes.json").exists():
        write_scene_shards(folder, args.shards, args.per_shard, seed=0, side=args.image_side)
    return f"{folder}/{{{final_shard_name(0)}..{final_shard_name(args.shards - 1)}}}.tar"


def ensure_venv() -> Path:
    """The open_clip_train venv's python (created on first use)."""
    python = VENV / "bin" / "python"
    marker = VENV / ".installed"
    if marker.exists():
        return python
    log.info("creating %s (torch from the local wheel cache, open-clip-torch 3.3.0)", VENV)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, "torch==2.14.1", "torchvision==0.29.1"], check=True)
    subprocess.run([*pip, *OC_PACKAGES], check=True)
    marker.write_text("\n".join(OC_PACKAGES))
    return python


def env_for(threads: int) -> dict[str, str]:
    """Both trainers: OMP_NUM_THREADS = --threads, no GPU."""
    return {**os.environ, "OMP_NUM_THREADS": str(threads), "CUDA_VISIBLE_DEVICES": ""}


def run_ours(args: Options, shards: str, name: str, epochs: int, *extra: str) -> dict[str, Any]:
    """``corpusforge train`` for ``epochs`` epochs' steps: rate from metrics.jsonl, wall and CPU seconds."""
    out = WORK / "train" / "runs" / name
    shutil.rmtree(out, ignore_errors=True)
    steps = epochs * args.steps_per_epoch
    command = [
        str(Path(sys.executable).with_name("corpusforge")),
        "train",
        "--shards",
        shards,
        "--output",
        str(out),
        "--model",
        "corpusforge-tiny",
        "--batch-size",
        str(args.batch_size),
        "--steps",
        str(steps),
        "--workers",
        str(args.workers),
        "--threads",
        str(args.threads),
        "--precision",
        "fp32",
        "--device",
        "cpu",
        "--lr",
        "1e-3",
        "--warmup-steps",
        "2",
        "--log-every",
        str(args.log_every),
        "--save-every",
        "0",
        "--no-tensorboard",
        *extra,
    ]
    wall, cpu = _run(command, out.with_suffix(".log"), env_for(args.threads))
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    first, last = lines[0], lines[-1]
    rate = (last["step"] - first["step"]) * args.batch_size / (last["time"] - first["time"])
    return {"samples_per_s": rate, "wall_s": wall, "cpu_s": cpu, "epochs": epochs}


def run_open_clip(args: Options, python: Path, shards: str, name: str, epochs: int) -> dict[str, Any]:
    """open_clip_train's ``main`` for ``epochs`` epochs: rate from its ``Batch (t)`` lines."""
    logs = WORK / "train" / "runs"
    shutil.rmtree(logs / name, ignore_errors=True)
    command = [
        str(python),
        str(BENCHMARKS / "open_clip_train_tiny.py"),
        str(MODEL_CONFIGS),
        "--train-data",
        shards,
        "--dataset-type",
        "webdataset",
        "--train-num-samples",
        str(args.samples),
        "--model",
        "corpusforge-tiny",
        "--batch-size",
        str(args.batch_size),
        "--epochs",
        str(epochs),
        "--workers",
        str(args.workers),
        "--precision",
        "fp32",
        "--device",
        "cpu",
        "--lr",
        "1e-3",
        "--warmup",
        "2",
        "--log-every-n-steps",
        str(args.log_every),
        "--zeroshot-frequency",
        "0",
        "--save-frequency",
        "0",
        "--report-to",
        "",
        "--logs",
        str(logs),
        "--name",
        name,
    ]
    wall, cpu = _run(command, logs / f"{name}.log", env_for(args.threads))
    text = (logs / f"{name}.log").read_text()
    intervals = [float(t) for t in BATCH_TIME.findall(text)]
    counts = _interval_steps(args.steps_per_epoch, args.log_every) * epochs
    if len(intervals) != len(counts):
        raise RuntimeError(
            f"open_clip_train printed {len(intervals)} log lines, not {len(counts)}; see its log"
        )
    # Line 0 of the first epoch covers step 0, line 1 steps 1..log_every: skipped, as ours skips up to
    # its first log line. Later lines are weighed by the steps they cover (epoch tails are short).
    pairs = list(zip(intervals[2:], counts[2:], strict=True))
    rate = sum(n for _, n in pairs) * args.batch_size / sum(t * n for t, n in pairs)
    return {"samples_per_s": rate, "wall_s": wall, "cpu_s": cpu, "epochs": epochs}


def _interval_steps(steps: int, every: int) -> list[int]:
    """Steps covered by each open_clip_train log line (it logs at i % every == 0 and at the end)."""
    logged = [i for i in range(steps) if i % every == 0 or i == steps - 1]
    return [logged[0] + 1] + [b - a for a, b in zip(logged, logged[1:], strict=False)]


def _run(command: list[str], log_path: Path, env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system, the process and its loader workers)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    with open(log_path, "w") as handle:
        result = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, env=env, cwd=REPO)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise RuntimeError(f"{command[0]} failed ({result.returncode}); see {log_path}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


TRAINERS = ("ours", "ours --no-jpeg-draft", "open_clip_train")


def run(args: Options, trainer: str, python: Path, shards: str, i: int, epochs: int) -> dict:
    """Round ``i`` of one trainer for ``epochs`` epochs."""
    name = f"{trainer.replace(' --', '-')}-{epochs}ep-{i}"
    if trainer == "open_clip_train":
        return run_open_clip(args, python, shards, name, epochs)
    return run_ours(args, shards, name, epochs, *trainer.split()[1:])


def main(argv: list[str] | None = None) -> None:
    """Every trainer for 1 and 2 epochs per round; print the rates and the ratios."""
    args = parse_args(argv)
    setup_logging()
    shards = make_shards(args)
    python = ensure_venv()
    samples = args.samples
    runs: dict[str, list[dict[str, Any]]] = {t: [] for t in TRAINERS}
    marginal: dict[str, list[float]] = {t: [] for t in TRAINERS}
    for i in range(args.repeats):
        for trainer in TRAINERS:
            one, two = (run(args, trainer, python, shards, i, epochs) for epochs in (1, 2))
            log.info("round %d/%d %s: %s / %s", i + 1, args.repeats, trainer, one, two)
            runs[trainer] += [one, two]
            # The second epoch's CPU seconds: start-up and teardown cancel out.
            marginal[trainer].append(samples / (two["cpu_s"] - one["cpu_s"]))
    wall_rate = {t: statistics.median(r["samples_per_s"] for r in v) for t, v in runs.items()}
    cpu_rate = {t: statistics.median(v) for t, v in marginal.items()}
    ratio = {
        "wall": wall_rate["ours"] / wall_rate["open_clip_train"],
        "cpu": cpu_rate["ours"] / cpu_rate["open_clip_train"],
        "wall_no_jpeg_draft": wall_rate["ours --no-jpeg-draft"] / wall_rate["open_clip_train"],
        "cpu_no_jpeg_draft": cpu_rate["ours --no-jpeg-draft"] / cpu_rate["open_clip_train"],
    }
    results = {
        "setup": {**asdict(args), "cpu_count": os.cpu_count(), "platform": platform.platform()},
        "runs": runs,
        "samples_per_cpu_s": marginal,
        "median_samples_per_s": wall_rate,
        "median_samples_per_cpu_s": cpu_rate,
        "ratios": ratio,
    }
    out = WORK / "train_results.json"
    out.write_text(json.dumps(results, indent=2))
    print(
        f"\nCLIP training throughput, corpusforge-tiny, batch {args.batch_size}, {samples} samples an "
        f"epoch, {args.workers} loader workers, OMP_NUM_THREADS={args.threads}, CPU fp32, "
        f"{args.repeats} round(s); raw: {shown(out)}"
    )
    rows = [
        (
            t,
            f"{wall_rate[t]:.1f}",
            f"{cpu_rate[t]:.1f}",
            ", ".join(f"{r['samples_per_s']:.1f}" for r in runs[t])
            + "; "
            + ", ".join(f"{x:.1f}" for x in marginal[t]),
        )
        for t in TRAINERS
    ]
    print(
        text_table(("trainer", "samples/s (wall)", "samples per CPU-s", "each run (wall; CPU)"), rows, "lrrl")
    )
    for key, value in ratio.items():
        print(
            f"ratio ours{' --no-jpeg-draft' if 'no_jpeg' in key else ''} / open_clip_train "
            f"({key.split('_')[0]}): {value:.2f}x" + (" (target >= 1.0x)" if key in ("wall", "cpu") else "")
        )


if __name__ == "__main__":
    main()
