"""The ``corpusforge`` command: demo, synthetic world generation and serving, CLIP training."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

from pipeline.errors import UserInputError
from pipeline.logs import setup_logging
from pipeline.report.options import add_arguments as add_report_arguments
from pipeline.train.options import add_arguments as add_train_arguments

log = logging.getLogger("corpusforge")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="corpusforge", description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser(
        "demo",
        help="run the pipeline on the synthetic world",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    demo.add_argument("--workdir", type=Path, default=Path("demo_output"))
    demo.add_argument("--images", type=int, default=1000)
    demo.add_argument("--faults-per-kind", type=int, default=2)
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--master", default="local[2]")
    demo.add_argument(
        "--scorer-pairs", type=int, default=2000, help="clean pairs to train the CLIP scorer on"
    )
    demo.add_argument("--scorer-steps", type=int, default=250, help="training steps of the CLIP scorer")
    demo.add_argument(
        "--top-fraction", type=float, default=0.75, help="best-scored fraction kept in the final shards"
    )
    demo.add_argument("--train-steps", type=int, default=300, help="steps of the pretraining run")

    synth = sub.add_parser(
        "synth", help="generate a synthetic world", formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    synth.add_argument("--out", type=Path, required=True)
    synth.add_argument("--images", type=int, default=1000)
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--mismatch-fraction", type=float, default=0.2)
    synth.add_argument("--benchmark-images", type=int, default=50)
    synth.add_argument("--planted-duplicates", type=int, default=20)

    serve = sub.add_parser(
        "serve",
        help="serve a synthetic world on 127.0.0.1 (with fault URLs)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    serve.add_argument("--world", type=Path, required=True)
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--faults-per-kind", type=int, default=0)
    serve.add_argument("--slow-seconds", type=float, default=3.0)

    train = sub.add_parser(
        "train",
        help="contrastive (CLIP) training on WebDataset shards; torchrun for several processes",
        description="Contrastive (CLIP) training on WebDataset shards. Several processes: "
        "torchrun --nproc_per_node N -m pipeline.cli train ...",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_train_arguments(train)

    report = sub.add_parser(
        "report",
        help="write DIR/report/index.html: figures of every stage that has run",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_report_arguments(report)
    return parser


def main(argv: list[str] | None = None) -> int:
    setup_logging()
    args = build_parser().parse_args(argv)
    try:
        if args.command == "demo":
            from pipeline.demo import DemoOptions, run_demo

            report = run_demo(
                DemoOptions(
                    workdir=args.workdir,
                    images=args.images,
                    faults_per_kind=args.faults_per_kind,
                    seed=args.seed,
                    master=args.master,
                    scorer_pairs=args.scorer_pairs,
                    scorer_steps=args.scorer_steps,
                    top_fraction=args.top_fraction,
                    train_steps=args.train_steps,
                )
            )
            print(f"demo finished: open the report at {report}")
        elif args.command == "train":
            _train(args)
        elif args.command == "report":
            from pipeline.report.command import format_result, write_report
            from pipeline.report.options import options_from_namespace as report_options

            print(format_result(write_report(report_options(args))))
        elif args.command == "synth":
            from pipeline.synthetic.world import WorldSpec, generate_world

            generate_world(
                args.out,
                WorldSpec(
                    images=args.images,
                    seed=args.seed,
                    mismatch_fraction=args.mismatch_fraction,
                    benchmark_images=args.benchmark_images,
                    planted_duplicates=args.planted_duplicates,
                ),
            )
        elif args.command == "serve":
            from pipeline.synthetic.server import WorldServer
            from pipeline.synthetic.world import write_url_lists

            if not (args.world / "world.parquet").exists():
                raise UserInputError(f"{args.world} is not a synthetic world (run corpusforge synth)")
            with WorldServer(args.world, port=args.port, slow_seconds=args.slow_seconds) as server:
                lists = write_url_lists(args.world, server.base_url, args.faults_per_kind)
                log.info(
                    "serving %s at %s; URL lists: %s",
                    args.world,
                    server.base_url,
                    ", ".join(str(p) for p in lists.values()),
                )
                while True:
                    time.sleep(3600)
    except UserInputError as exc:
        log.error("%s", exc)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


def _train(args: argparse.Namespace) -> None:
    from pipeline.train.loop import train
    from pipeline.train.options import options_from_namespace

    summary = train(options_from_namespace(args))
    if os.environ.get("RANK", "0") == "0":
        evals = " ".join(f"{k}={v:.3f}" for k, v in summary["eval"].items())
        print(
            f"trained {summary['model']} to step {summary['steps']}: {summary['samples_this_run']} samples "
            f"at {summary['samples_per_s']:.1f} samples/s, final loss {summary['final_loss']:.3f}, "
            f"{summary['corrupt_samples']} corrupt samples and {summary['corrupt_shards']} bad shards "
            f"skipped; model: {summary['model_file']}" + (f"; eval: {evals}" if evals else "")
        )


if __name__ == "__main__":
    sys.exit(main())
