"""The ``corpusforge`` command: demo, synthetic world generation and serving, CLIP training, model
export and embedding serving."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from pipeline.cli_options import add_options, option, options_from_namespace, section
from pipeline.demo_options import DemoOptions
from pipeline.errors import UserInputError
from pipeline.explore.options import ExploreOptions
from pipeline.logs import setup_logging
from pipeline.report.options import ReportOptions
from pipeline.synthetic.world import WorldSpec, generate_world
from pipeline.train.options import TrainerOptions

log = logging.getLogger("corpusforge")


@dataclass(frozen=True)
class SynthOptions:
    """``corpusforge synth``: the folder to draw a synthetic world into, and its parameters."""

    out: Path = option(help="folder of the world", parse=Path)
    world: WorldSpec = section(WorldSpec, None)


@dataclass(frozen=True)
class ServeOptions:
    """``corpusforge serve-world``: a synthetic world served on 127.0.0.1."""

    world: Path = option(help="folder written by corpusforge synth", parse=Path)
    port: int = option(8000, help="port on 127.0.0.1")
    faults_per_kind: int = option(0, help="URLs of each fault kind added to the written URL lists")
    slow_seconds: float = option(3.0, help="how long the slow fault URLs stall")


def build_parser() -> argparse.ArgumentParser:
    """The ``corpusforge`` command line: every option comes from its options dataclass."""
    parser = argparse.ArgumentParser(prog="corpusforge", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    commands = {
        "demo": ("run the pipeline on the synthetic world", DemoOptions),
        "synth": ("generate a synthetic world", SynthOptions),
        "serve-world": ("serve a synthetic world on 127.0.0.1 (with fault URLs)", ServeOptions),
        "report": ("write DIR/report/index.html: figures of every stage that has run", ReportOptions),
        "explore": (
            "serve a page on 127.0.0.1 to search a dataset by text or image, filter it, open samples and "
            "export uid lists for build_shards (needs jobs/index.py)",
            ExploreOptions,
        ),
    }
    # Export and embedding serving (issue 19): their options modules import neither torch nor Flask.
    from pipeline.export.options import ExportOptions
    from pipeline.serve.options import ServeModelOptions

    commands["export"] = ("export a CLIP checkpoint's encoders to ONNX, checked against torch", ExportOptions)
    commands["serve"] = ("serve text and image embeddings of an exported model over HTTP", ServeModelOptions)
    for name, (text, options_type) in commands.items():
        command = sub.add_parser(name, help=text, description=f"{text[0].upper()}{text[1:]}.")
        add_options(command, options_type)
    train = sub.add_parser(
        "train",
        help="contrastive (CLIP) training on WebDataset shards; torchrun for several processes",
        description="Contrastive (CLIP) training on WebDataset shards. Several processes: "
        "torchrun --nproc_per_node N -m pipeline.cli train ...",
    )
    add_options(train, TrainerOptions)
    from pipeline.imports.job import ImportStage
    from pipeline.imports.options import ImportOptions

    imports = sub.add_parser(
        "import-img2dataset",
        help="import an img2dataset output folder as a dataset's raw shards (runs Spark locally; on a "
        "cluster: spark-submit jobs/import_img2dataset.py)",
        description=ImportStage.description,
    )
    add_options(imports, ImportOptions)
    # Probes on stored embeddings (issue 18, part C): corpusforge probe train.
    from pipeline.probe.options import ProbeTrainOptions

    probe = sub.add_parser("probe", help="classifier heads (probes) on a dataset's stored image embeddings")
    probe_sub = probe.add_subparsers(dest="probe_command", required=True)
    probe_train = probe_sub.add_parser(
        "train",
        help="fit a linear or MLP probe on labelled uids (held-out validation, suggested threshold)",
        description="Fit a linear or MLP probe on the stored image embeddings of labelled uids; apply it "
        "with jobs/score.py --probe FILE, filter with build_shards --probe-max/--probe-min.",
    )
    add_options(probe_train, ProbeTrainOptions)
    return parser


def main(argv: list[str] | None = None) -> int:
    setup_logging()
    parser = build_parser()
    args = parser.parse_args(_serve_world_alias(sys.argv[1:] if argv is None else list(argv)))
    try:
        if args.command == "demo":
            from pipeline.demo import run_demo

            report = run_demo(options_from_namespace(DemoOptions, args))
            dataset = report.parent.parent
            print(
                f"demo finished: open the report at {report}, or search the corpus with "
                f"corpusforge explore --dataset {dataset}"
            )
        elif args.command == "train":
            _train(options_from_namespace(TrainerOptions, args))
        elif args.command == "report":
            from pipeline.report.command import format_result, write_report

            print(format_result(write_report(options_from_namespace(ReportOptions, args))))
        elif args.command == "synth":
            synth = options_from_namespace(SynthOptions, args)
            generate_world(synth.out, synth.world)
        elif args.command == "explore":
            from pipeline.explore.server import serve as serve_explorer

            serve_explorer(options_from_namespace(ExploreOptions, args))
        elif args.command == "serve-world":
            _serve(options_from_namespace(ServeOptions, args))
        elif args.command == "export":
            return _export(args)
        elif args.command == "serve":
            from pipeline.serve.options import ServeModelOptions
            from pipeline.serve.server import serve_forever

            serve_forever(options_from_namespace(ServeModelOptions, args))
        elif args.command == "import-img2dataset":
            from pipeline.entrypoint import run_parsed
            from pipeline.imports.job import ImportStage
            from pipeline.imports.options import ImportOptions

            return run_parsed(ImportStage(), options_from_namespace(ImportOptions, args))
        elif args.command == "probe":
            from pipeline.probe.options import ProbeTrainOptions
            from pipeline.probe.train import format_result, train_probe

            probe_options = options_from_namespace(ProbeTrainOptions, args)
            print(format_result(train_probe(probe_options), probe_options.output))
    except UserInputError as exc:
        log.error("%s", exc)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


def _serve_world_alias(argv: list[str]) -> list[str]:
    """``serve --world ...`` (the synthetic world's server before issue 19) -> ``serve-world ...``."""
    if argv[:1] == ["serve"] and any(arg == "--world" or arg.startswith("--world=") for arg in argv[1:]):
        log.warning(
            "'corpusforge serve --world' is deprecated: the synthetic world's server is now "
            "'corpusforge serve-world' (same options); 'corpusforge serve' serves an exported model"
        )
        return ["serve-world", *argv[1:]]
    return argv


def _export(args: argparse.Namespace) -> int:
    from pipeline.export.job import format_result, run_export
    from pipeline.export.options import ExportOptions
    from pipeline.export.verify import VerificationError

    options = options_from_namespace(ExportOptions, args)
    try:
        manifest = run_export(options)
    except VerificationError as exc:
        log.error("export failed its check: %s", exc)
        return 1
    print(format_result(manifest, options.output))
    return 0


def _serve(options: ServeOptions) -> None:
    from pipeline.synthetic.server import WorldServer
    from pipeline.synthetic.world import write_url_lists

    if not (options.world / "world.parquet").exists():
        raise UserInputError(f"{options.world} is not a synthetic world (run corpusforge synth)")
    with WorldServer(options.world, port=options.port, slow_seconds=options.slow_seconds) as server:
        lists = write_url_lists(options.world, server.base_url, options.faults_per_kind)
        log.info(
            "serving %s at %s; URL lists: %s",
            options.world,
            server.base_url,
            ", ".join(str(p) for p in lists.values()),
        )
        while True:
            time.sleep(3600)


def _train(options: TrainerOptions) -> None:
    from pipeline.train.loop import train

    summary = train(options)
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
