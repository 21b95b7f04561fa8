"""Bilingual zero-shot: corpusforge-tiny trained on English and Chinese captions, asked in both languages.

    .venv/bin/python benchmarks/bilingual_zero_shot.py [--language bilingual] [--tokenizer bert-chinese]
        [--samples 4000] [--steps 400] [--batch-size 128] [--eval-images 500]

1. writes WebDataset shards of synthetic scenes (64 px) whose captions are drawn at random in
   English or Chinese (``--language bilingual``; ``mixed`` adds Chinese captions with English
   colour and shape words), the same pictures as an English world of that seed;
2. draws a held-out, clean, labelled Chinese world (``held_out_spec``, seed 1234, ``--language zh``):
   its ``world.json`` has the class names in English and in Chinese;
3. trains corpusforge-tiny from scratch with ``corpusforge train --tokenizer TOKENIZER`` (the
   trainer's own code, in this process, ``--workers 2 --threads 1``);
4. reads the trainer's zero-shot top-1 on the held-out pictures with English prompts
   (``world/zeroshot_top1``: "one red circle at the centre of a plain grey background", "a red
   circle", ...) and with Chinese prompts (``world_zh/zeroshot_top1``: "一个红色圆形，位于纯灰色背景的中央",
   "一张红色圆形的图片", ...), and Chinese caption -> picture retrieval (``world/text_to_image_R@1``,
   the held-out captions are Chinese); chance is 1/32 (3.1%);
5. prints the table, the target (both languages at >= 5x chance) and writes
   benchmarks/_work/bilingual/results.json (training log: benchmarks/_work/bilingual/run/).
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import time
from dataclasses import replace

from harness.paths import WORK, shown
from harness.table import pct, text_table

from pipeline.logs import setup_logging
from pipeline.synthetic.scenes import LANGUAGES
from pipeline.synthetic.world import generate_world, held_out_spec
from pipeline.train.loop import train
from pipeline.train.options import options_from_args
from testkit.scene_shards import write_scene_shards

log = logging.getLogger("benchmarks.bilingual")
FOLDER = WORK / "bilingual"


def build_parser() -> argparse.ArgumentParser:
    """The benchmark's command line."""
    p = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--language", default="bilingual", choices=[x for x in LANGUAGES if x not in ("en", "zh")])
    p.add_argument("--tokenizer", default="bert-chinese", help="corpusforge train --tokenizer")
    p.add_argument("--samples", type=int, default=4000, help="training pairs (shards of 250)")
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--eval-images", type=int, default=500, help="held-out labelled pictures")
    p.add_argument("--seed", type=int, default=0)
    return p


def main() -> None:
    """Write the data, train, print and record the zero-shot accuracies."""
    setup_logging()
    a = build_parser().parse_args()
    shutil.rmtree(FOLDER, ignore_errors=True)
    per_shard = 250
    shards = max(2, -(-a.samples // per_shard))
    started = time.perf_counter()
    write_scene_shards(FOLDER / "final", shards, per_shard, seed=a.seed, language=a.language)
    eval_world = generate_world(FOLDER / "eval", replace(held_out_spec(a.eval_images), language="zh"))
    data_seconds = time.perf_counter() - started
    argv = [
        "--shards",
        f"{FOLDER}/final/{{000000..{shards - 1:06d}}}.tar",
        "--output",
        str(FOLDER / "run"),
        "--model",
        "corpusforge-tiny",
        "--tokenizer",
        a.tokenizer,
        "--steps",
        str(a.steps),
        "--batch-size",
        str(a.batch_size),
        "--lr",
        str(a.lr),
        "--warmup-steps",
        str(max(1, a.steps // 10)),
        "--workers",
        "2",
        "--threads",
        "1",
        "--seed",
        str(a.seed),
        "--save-every",
        "0",
        "--no-tensorboard",
        "--eval-world",
        str(eval_world),
    ]
    started = time.perf_counter()
    summary = train(options_from_args(argv))
    train_seconds = time.perf_counter() - started
    evals = summary["eval"]
    chance = 1 / 32
    rows = [
        ["English prompts", "world/zeroshot_top1"],
        ["Chinese prompts", "world_zh/zeroshot_top1"],
        ["English prompts, top-5", "world/zeroshot_top5"],
        ["Chinese prompts, top-5", "world_zh/zeroshot_top5"],
        ["Chinese caption -> picture R@1", "world/text_to_image_R@1"],
    ]
    table = [
        [name, pct(evals[key], 1), f"{evals[key] / chance:.1f}x" if "top1" in key else ""]
        for name, key in rows
    ]
    met = all(evals[key] >= 5 * chance for key in ("world/zeroshot_top1", "world_zh/zeroshot_top1"))
    results = {
        "options": vars(a),
        "command": "corpusforge train " + " ".join(argv),
        "eval": evals,
        "final_loss": summary["final_loss"],
        "tokenizer": summary["tokenizer"],
        "data_seconds": data_seconds,
        "train_seconds": train_seconds,
        "target_met": met,
    }
    (FOLDER / "results.json").write_text(json.dumps(results, indent=2, ensure_ascii=False))
    print(text_table(["zero-shot on the held-out pictures", "top-1", "x chance"], table))
    print(
        f"chance 3.1%; target (both languages >= 5x chance): {'met' if met else 'NOT met'}; "
        f"final loss {summary['final_loss']:.3f}; data {data_seconds:.0f} s, training {train_seconds:.0f} s; "
        f"results in {shown(FOLDER / 'results.json')}"
    )


if __name__ == "__main__":
    main()
