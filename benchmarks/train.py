"""Training throughput on the CPU: ``corpusforge train`` against ``open_clip_train`` 3.x.

    .venv/bin/python benchmarks/train.py [--shards 8] [--per-shard 384] [--batch-size 64] [--repeats 2]

One run, same shards, same model config (corpusforge-tiny), same batch size, fp32, CPU only:

1. writes (once, cached under benchmarks/_work/train/) --shards WebDataset tars of synthetic
   scenes (--image-side px JPEGs, as final shards hold them) with sizes.json;
2. creates (once) the venv benchmarks/_work/open_clip_train-venv with torch 2.14.1 /
   torchvision 0.29.1 (from the local wheel cache), open-clip-torch 3.3.0 and the training
   dependencies it pins (webdataset<=0.2.86, pandas, braceexpand, fsspec);
3. alternates --repeats times: ``corpusforge train`` (one epoch of steps), the same with
   ``--no-jpeg-draft`` (every JPEG decoded at full size, as open_clip_train does) and
   ``python -m open_clip_train.main`` (one epoch, through benchmarks/open_clip_train_tiny.py,
   which registers the bundled config), each with --workers loader processes and
   OMP_NUM_THREADS=--threads for the training process;
4. steady-state samples/s of each: the training steps between the first and the last log line
   (start-up, worker spawn and the first steps excluded the same way for both): ours from the
   timestamps in metrics.jsonl, open_clip_train from its per-interval ``Batch (t)`` averages;
   also the wall time of each whole command;
5. prints the table with the ratio (target: ours / open_clip_train >= 1.0) and writes
   benchmarks/_work/train_results.json; logs of every run are in benchmarks/_work/train/runs/.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / "benchmarks" / "_work"
VENV = WORK / "open_clip_train-venv"
OC_PACKAGES = [
    "open-clip-torch==3.3.0",
    "webdataset>=0.2.5,<=0.2.86",
    "pandas",
    "braceexpand",
    "fsspec",
]
BATCH_TIME = re.compile(r"Batch \(t\): ([0-9.]+),")

log = logging.getLogger("benchmarks.train")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shards", type=int, default=8, help="training shards")
    p.add_argument("--per-shard", type=int, default=384, help="samples per shard")
    p.add_argument("--image-side", type=int, default=256, help="stored image size in px")
    p.add_argument("--batch-size", type=int, default=64, help="batch size of both trainers")
    p.add_argument("--workers", type=int, default=2, help="data loader processes of both trainers")
    p.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS of both training processes")
    p.add_argument("--log-every", type=int, default=4, help="steps between log lines (both)")
    p.add_argument("--repeats", type=int, default=2, help="alternating runs of each trainer")
    return p.parse_args()


def make_shards(args: argparse.Namespace) -> Path:
    from pipeline.train.scene_shards import write_scene_shards

    folder = WORK / "train" / f"shards-{args.shards}x{args.per_shard}-{args.image_side}px"
    if not (folder / "sizes.json").exists():
        write_scene_shards(folder, args.shards, args.per_shard, seed=0, side=args.image_side)
    return folder


def ensure_venv() -> Path:
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
    return {**os.environ, "OMP_NUM_THREADS": str(threads), "CUDA_VISIBLE_DEVICES": ""}


def run_ours(args: argparse.Namespace, shards: Path, index: int, *extra: str) -> dict[str, Any]:
    out = WORK / "train" / "runs" / f"ours{'-'.join(('', *extra))}-{index}"
    shutil.rmtree(out, ignore_errors=True)
    steps = args.shards * args.per_shard // args.batch_size
    command = [
        str(Path(sys.executable).with_name("corpusforge")),
        "train",
        "--shards",
        f"{shards}/{{000000..{args.shards - 1:06d}}}.tar",
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
    wall = _run(command, out.with_suffix(".log"), env_for(args.threads))
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    first, last = lines[0], lines[-1]
    rate = (last["step"] - first["step"]) * args.batch_size / (last["time"] - first["time"])
    return {"samples_per_s": rate, "wall_s": wall, "steps": last["step"]}


def run_open_clip(args: argparse.Namespace, python: Path, shards: Path, index: int) -> dict[str, Any]:
    logs = WORK / "train" / "runs"
    name = f"open_clip-{index}"
    shutil.rmtree(logs / name, ignore_errors=True)
    command = [
        str(python),
        str(REPO / "benchmarks" / "open_clip_train_tiny.py"),
        str(REPO / "pipeline" / "score" / "model_configs"),
        "--train-data",
        f"{shards}/{{000000..{args.shards - 1:06d}}}.tar",
        "--dataset-type",
        "webdataset",
        "--train-num-samples",
        str(args.shards * args.per_shard),
        "--model",
        "corpusforge-tiny",
        "--batch-size",
        str(args.batch_size),
        "--epochs",
        "1",
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
    wall = _run(command, logs / f"{name}.log", env_for(args.threads))
    text = (logs / f"{name}.log").read_text()
    intervals = [float(t) for t in BATCH_TIME.findall(text)]
    if len(intervals) < 4:
        raise RuntimeError(f"open_clip_train printed {len(intervals)} log lines; see {logs / name}.log")
    # Line 0 covers step 0, line 1 steps 1..log_every: skipped, as ours skips up to its first log
    # line. The last line may cover a short tail: lines are weighed by their steps.
    steps = args.shards * args.per_shard // args.batch_size
    counts = _interval_steps(steps, args.log_every)
    pairs = list(zip(intervals[2:], counts[2:], strict=False))
    seconds = sum(t * n for t, n in pairs)
    rate = sum(n for _, n in pairs) * args.batch_size / seconds
    return {"samples_per_s": rate, "wall_s": wall, "log_lines": len(intervals)}


def _interval_steps(steps: int, every: int) -> list[int]:
    """Steps covered by each open_clip_train log line (it logs at i % every == 0 and at the end)."""
    logged = [i for i in range(steps) if i % every == 0 or i == steps - 1]
    return [logged[0] + 1] + [b - a for a, b in zip(logged, logged[1:], strict=False)]


def _run(command: list[str], log_path: Path, env: dict[str, str]) -> float:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with open(log_path, "w") as handle:
        result = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, env=env, cwd=REPO)
    wall = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"{command[0]} failed ({result.returncode}); see {log_path}")
    return wall


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parse_args()
    shards = make_shards(args)
    python = ensure_venv()
    runs: dict[str, list[dict[str, Any]]] = {"ours": [], "ours --no-jpeg-draft": [], "open_clip_train": []}
    for i in range(args.repeats):
        log.info("round %d/%d: corpusforge train", i + 1, args.repeats)
        runs["ours"].append(run_ours(args, shards, i))
        log.info("round %d/%d: corpusforge train --no-jpeg-draft", i + 1, args.repeats)
        runs["ours --no-jpeg-draft"].append(run_ours(args, shards, i, "--no-jpeg-draft"))
        log.info("round %d/%d: open_clip_train", i + 1, args.repeats)
        runs["open_clip_train"].append(run_open_clip(args, python, shards, i))
    median = {k: statistics.median(r["samples_per_s"] for r in v) for k, v in runs.items()}
    wall = {k: statistics.median(r["wall_s"] for r in v) for k, v in runs.items()}
    ratio = median["ours"] / median["open_clip_train"]
    ratio_full_decode = median["ours --no-jpeg-draft"] / median["open_clip_train"]
    results = {
        "setup": {**vars(args), "cpu_count": os.cpu_count(), "platform": platform.platform()},
        "runs": runs,
        "median_samples_per_s": median,
        "median_wall_s": wall,
        "ratio": ratio,
        "ratio_no_jpeg_draft": ratio_full_decode,
    }
    (WORK / "train_results.json").write_text(json.dumps(results, indent=2))
    samples = args.shards * args.per_shard
    print(
        f"\nCLIP training throughput, corpusforge-tiny, batch {args.batch_size}, {samples} samples "
        f"(1 epoch), {args.workers} loader workers, OMP_NUM_THREADS={args.threads}, CPU fp32"
    )
    print(f"{'trainer':<24}{'samples/s (median)':>20}{'runs':>28}{'wall s (median)':>18}")
    for name in runs:
        each = ", ".join(f"{r['samples_per_s']:.1f}" for r in runs[name])
        print(f"{name:<24}{median[name]:>20.1f}{each:>28}{wall[name]:>18.1f}")
    verdict = "met" if ratio >= 1.0 else "MISSED"
    print(f"ratio ours / open_clip_train: {ratio:.2f}x (target >= 1.0x: {verdict})")
    print(f"ratio ours --no-jpeg-draft / open_clip_train: {ratio_full_decode:.2f}x")


if __name__ == "__main__":
    main()
