"""Encode throughput and latency: onnxruntime (the exported encoders) against torch, on the CPU.

    .venv/bin/python benchmarks/onnx_encode.py [--models corpusforge-tiny,ViT-B-32] [--batch 32]
        [--repeats 3] [--latency-runs 30] [--clients 8] [--requests 40]

For each model (random weights: speed does not depend on their values) it exports a checkpoint
with ``corpusforge export``'s library call (the default dynamo exporter), then measures, on the
same inputs and with every core for both: images/s and texts/s at --batch (median of --repeats
runs), and batch-1 latency (median and p95 of --latency-runs runs), torch under
``inference_mode`` against onnxruntime's CPU provider. For the first model it then runs the
embedding server (``corpusforge serve``'s ``ModelServer``) on 127.0.0.1 and counts requests/s of
--clients concurrent clients sending one text each, with batching (--max-batch 32, 5 ms) and
without (--max-batch 1). Prints the table with the ratios; writes
benchmarks/_work/onnx_encode_results.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime
import open_clip
import torch

from pipeline.export.job import run_export
from pipeline.export.options import ExportOptions
from pipeline.score.model import register_configs
from pipeline.serve.options import ServeModelOptions
from pipeline.serve.server import ModelServer

WORK = Path(__file__).parent / "_work"


def timed(fn: Any, runs: int) -> list[float]:
    """Seconds of each of ``runs`` calls, after one warm-up call."""
    fn()
    out = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        out.append(time.perf_counter() - started)
    return out


def p95(values: list[float]) -> float:
    return float(np.percentile(values, 95))


def measure_model(name: str, args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    """Export ``name`` with random weights, then time torch and onnxruntime on the same inputs."""
    torch.manual_seed(0)
    model = open_clip.create_model(name).eval()
    checkpoint = folder / f"{name}.pt"
    torch.save(model.state_dict(), checkpoint)
    started = time.perf_counter()
    manifest = run_export(
        ExportOptions(checkpoint=str(checkpoint), output=folder / name, model=name, verify_batches=(1, 4))
    )
    export_s = time.perf_counter() - started
    size, context = manifest["image"]["size"], manifest["text"]["context_length"]
    tokenizer = open_clip.get_tokenizer(name)
    texts = [f"a photo of {i} red circles on a striped background" for i in range(args.batch)]
    inputs = {
        "image": torch.randn(args.batch, 3, size, size),
        "text": tokenizer(texts, context_length=context),
    }
    sessions = {
        role: onnxruntime.InferenceSession(
            str(folder / name / f"{role}_encoder.onnx"), providers=["CPUExecutionProvider"]
        )
        for role in ("image", "text")
    }
    feeds = {"image": "pixels", "text": "tokens"}
    result: dict[str, Any] = {"export_s": round(export_s, 1), "max_abs_diff": manifest["verification"]}
    for role in ("image", "text"):
        encode = model.encode_image if role == "image" else model.encode_text

        def torch_run(x: torch.Tensor, encode: Any = encode) -> None:
            with torch.inference_mode():
                encode(x, normalize=True)

        def ort_run(x: np.ndarray, role: str = role) -> None:
            sessions[role].run(None, {feeds[role]: x})

        batch, one = inputs[role], inputs[role][:1]
        row = {}
        for engine, run, convert in (
            ("torch", torch_run, lambda t: t),
            ("onnxruntime", ort_run, lambda t: t.numpy()),
        ):
            full, single = convert(batch), convert(one)
            row[engine] = {
                "per_s": args.batch / statistics.median(timed(lambda r=run, x=full: r(x), args.repeats)),
                "latency": timed(lambda r=run, x=single: r(x), args.latency_runs),
            }
            lat = row[engine]["latency"]
            row[engine]["latency_ms"] = {"median": statistics.median(lat) * 1000, "p95": p95(lat) * 1000}
            del row[engine]["latency"]
        result[role] = row
    return result


def measure_server(folder: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Requests/s of concurrent one-text clients, batching on and off."""
    out = {}
    for label, max_batch in (("batching (max-batch 32, 5 ms)", 32), ("no batching (max-batch 1)", 1)):
        options = ServeModelOptions(model=folder, port=0, max_batch=max_batch, max_wait_ms=5.0)
        with ModelServer(options) as server:
            url = f"{server.base_url}/v1/embed/text"

            def client(index: int, url: str = url) -> None:
                for i in range(args.requests):
                    body = json.dumps({"texts": [f"client {index} caption {i} of red circles"]}).encode()
                    req = urllib.request.Request(url, body, {"Content-Type": "application/json"})
                    with urllib.request.urlopen(req, timeout=120) as reply:
                        reply.read()

            threads = [threading.Thread(target=client, args=(c,)) for c in range(args.clients)]
            started = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            seconds = time.perf_counter() - started
            with urllib.request.urlopen(f"{server.base_url}/metrics") as reply:
                metrics = json.loads(reply.read())
        out[label] = {
            "requests_per_s": args.clients * args.requests / seconds,
            "mean_batch_size": metrics["mean_batch_size"],
            "batches": metrics["batches"],
        }
    return out


def report(results: dict[str, Any]) -> str:
    lines = [
        "| model | encoder | torch /s (batch) | onnxruntime /s | ratio | torch latency ms (median / p95) "
        "| onnxruntime latency ms | ratio (median) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, result in results["models"].items():
        for role in ("image", "text"):
            t, o = result[role]["torch"], result[role]["onnxruntime"]
            lines.append(
                f"| {name} | {role} | {t['per_s']:.1f} | {o['per_s']:.1f} | {o['per_s'] / t['per_s']:.2f}x | "
                f"{t['latency_ms']['median']:.1f} / {t['latency_ms']['p95']:.1f} | "
                f"{o['latency_ms']['median']:.1f} / {o['latency_ms']['p95']:.1f} | "
                f"{t['latency_ms']['median'] / o['latency_ms']['median']:.2f}x faster |"
            )
    if results.get("server"):
        lines += ["", "| server (one text per request) | requests/s | mean batch size |", "|---|---|---|"]
        for label, row in results["server"].items():
            lines.append(f"| {label} | {row['requests_per_s']:.1f} | {row['mean_batch_size']:.2f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", default="corpusforge-tiny,ViT-B-32")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--latency-runs", type=int, default=30)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=40, help="requests per client (0: no server run)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    register_configs()
    torch.set_num_threads(os.cpu_count() or 1)
    models = [m for m in args.models.split(",") if m]
    results: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "batch": args.batch,
        "models": {},
    }
    with tempfile.TemporaryDirectory(prefix="onnx-bench-") as tmp:
        for name in models:
            results["models"][name] = measure_model(name, args, Path(tmp))
            print(f"{name}: measured", flush=True)
        if args.requests > 0:
            results["server"] = measure_server(Path(tmp) / models[0], args)
    WORK.mkdir(exist_ok=True)
    (WORK / "onnx_encode_results.json").write_text(json.dumps(results, indent=2))
    print(report(results))


if __name__ == "__main__":
    main()
