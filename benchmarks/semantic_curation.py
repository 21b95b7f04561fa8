"""Does semantic dedup (SemDeDup) help on top of pHash dedup? Same compute, the synthetic world.

    .venv/bin/python benchmarks/semantic_curation.py [--images 3000] [--steps 300] [--seeds 0,1,2]
        [--semantic-share 0.2 | --semantic-threshold T]

The harness of benchmarks/curation.py (its functions, options and cache keying), with two arms
that differ only in ``jobs/dedup.py``:

1. the corpus world (30% mismatched captions, no planted benchmark copies) is downloaded and
   scored with ``jobs/score.py --save-embeddings``;
2. the threshold T: the script repeats SemDeDup on the saved embeddings in numpy, exactly as
   ``pipeline/dedup/semantic.py`` does it (spherical k-means, sqrt(N) clusters, seed 0; pairs
   inside a cluster at cosine >= T; connected components keep one sample each), for a grid of T,
   and picks the largest T at which it removes at least ``--semantic-share`` of the corpus
   (``--semantic-threshold`` sets T instead). The sweep is printed with, for information, the
   share of those pairs whose two scenes have identical parameters (shape, colour, count,
   position, background, texture: re-renders of one scene, the semantic duplicates of this world);
3. arm (a) ``phash``: ``jobs/dedup.py`` with its defaults (within-corpus exact and near pHash
   duplicates, verified), then ``jobs/build_shards.py --top-fraction F``; arm (b) ``semantic``:
   the same plus ``--semantic-threshold T``, then the same build. Each arm keeps its
   dedup/matches.parquet (WORKDIR/arms/ARM/matches.parquet);
4. both arms train corpusforge-tiny with ``corpusforge train``, once per seed, with the same
   steps x batch size (seeds interleaved: a0, b0, a1, b1, ...), and are evaluated on the held-out
   world: zero-shot top-1 and image->text / text->image retrieval recall@1 and @5;
5. prints per arm the samples dropped as exact / near / semantic duplicates, and per seed, mean
   and spread (max - min, std) each metric.

Cached under benchmarks/_work/semantic_curation/ (keyed like curation.py; ``--fresh`` starts over);
results in .../results.json, training logs in .../runs/ARM/seed_S/train.log.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections import Counter
from dataclasses import asdict
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
from curation import (
    REUSED,
    ZEROSHOT,
    Setup,
    build_arm,
    build_parser,
    prepare_dataset,
    prepare_eval_world,
    setup_from,
    spread,
    train_run,
)
from harness.paths import WORK, shown
from harness.table import pct, text_table
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from pipeline.dataset import Dataset
from pipeline.dedup.embeddings import shard_embeddings
from pipeline.dedup.semantic import assign, default_clusters, spherical_kmeans
from pipeline.logs import setup_logging

log = logging.getLogger("benchmarks.semantic_curation")
SCORE_ARGS = ("--save-embeddings",)
METRICS = {  # results key: (metrics.jsonl / summary.json key, short column name)
    "zeroshot_top1": (ZEROSHOT, "zero-shot top-1"),
    "i2t_r1": ("world/image_to_text_R@1", "image->text R@1"),
    "i2t_r5": ("world/image_to_text_R@5", "image->text R@5"),
    "t2i_r1": ("world/text_to_image_R@1", "text->image R@1"),
    "t2i_r5": ("world/text_to_image_R@5", "text->image R@5"),
}
# T of the sweep: 0.80-0.97 by 0.01, then 0.980-0.999 by 0.001 (tiny CLIP models put most pictures close)
GRID = (*(round(0.8 + 0.01 * i, 2) for i in range(18)), *(round(0.98 + 0.001 * i, 3) for i in range(20)))


def parse() -> tuple[Setup, float | None, float, int]:
    """curation.py's options plus the semantic threshold (or the share it should remove)."""
    p = build_parser(__doc__)
    p.set_defaults(workdir=WORK / "semantic_curation")
    p.add_argument(
        "--semantic-threshold",
        type=float,
        default=None,
        help="arm (b)'s T (none: chosen by --semantic-share)",
    )
    p.add_argument(
        "--semantic-share",
        type=float,
        default=0.2,
        help="without --semantic-threshold: the largest T of the sweep at which SemDeDup removes at least "
        "this share of the corpus",
    )
    p.add_argument("--semantic-clusters", type=int, default=0, help="k-means clusters (0: sqrt of samples)")
    a = p.parse_args()
    if not 0 < a.semantic_share < 1:
        p.error(f"--semantic-share must be in (0, 1), got {a.semantic_share}")
    return setup_from(p, a), a.semantic_threshold, a.semantic_share, a.semantic_clusters


def corpus_embeddings(dataset: Path) -> tuple[list[str], np.ndarray, list[str]]:
    """uids, unit image embeddings and true scene (caption of the drawn scene) of every scored sample."""
    ds = Dataset(str(dataset))
    world = pq.read_table(dataset.parent / "world" / "world.parquet").to_pylist()
    scene_of_file = {Path(row["file"]).name: row["true_caption"] for row in world}
    url_of: dict[str, str] = {}
    uids: list[str] = []
    blocks = []
    for shard in ds.raw.complete_shards():
        for row in shard.successes(["uid", "url"]):
            url_of[row["uid"]] = row["url"]
        shard_uids, matrix = shard_embeddings(ds, shard.index)
        uids += shard_uids
        blocks.append(matrix)
    scenes = [scene_of_file[url_of[u].rsplit("/", 1)[-1]] for u in uids]
    return uids, np.concatenate(blocks), scenes


def semdedup_sweep(
    embeddings: np.ndarray, scenes: list[str], clusters: int, grid: tuple[float, ...] = GRID
) -> dict[str, Any]:
    """SemDeDup as pipeline/dedup/semantic.py runs it (all rows train k-means at this size), per T."""
    n = len(embeddings)
    k = clusters or default_clusters(n)
    labels = assign(embeddings, spherical_kmeans(embeddings, k))
    same = np.asarray(scenes)
    pairs_a, pairs_b, sims = [], [], []
    nearest = np.full(n, -1.0, dtype=np.float32)  # highest similarity to another member of its cluster
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        if len(members) < 2:
            continue
        block = embeddings[members] @ embeddings[members].T
        np.fill_diagonal(block, -1.0)
        nearest[members] = block.max(axis=1)
        i, j = np.triu_indices(len(members), 1)
        pairs_a.append(members[i])
        pairs_b.append(members[j])
        sims.append(block[i, j])
    a, b, s = np.concatenate(pairs_a), np.concatenate(pairs_b), np.concatenate(sims)
    identical = same[a] == same[b]
    repeats = n - len(set(scenes))  # samples whose scene parameters an earlier sample already drew
    rows = []
    for t in grid:
        keep = s >= t
        graph = coo_matrix((np.ones(int(keep.sum())), (a[keep], b[keep])), shape=(n, n))
        groups = connected_components(graph, directed=False)[0]
        rows.append(
            {
                "threshold": t,
                "pairs": int(keep.sum()),
                "pairs_identical_scene": float(identical[keep].mean()) if keep.any() else None,
                "removed": n - groups,
                "removed_share": (n - groups) / n,
            }
        )
    quantiles = {f"q{q}": float(np.quantile(nearest[nearest > -1], q / 100)) for q in (10, 25, 50, 75, 90)}
    twins = twin_similarities(embeddings, same) if n <= 20_000 else None
    return {
        "samples": n,
        "clusters": k,
        "scene_repeats": repeats,
        "scene_repeat_share": repeats / n,
        "identical_scene_pairs_in_clusters": int(identical.sum()),
        "identical_scene_pairs_total": int(sum(v * (v - 1) // 2 for v in Counter(scenes).values())),
        "nearest_in_cluster_quantiles": quantiles,
        "within_cluster_similarity_quantiles": {
            f"q{q}": float(np.quantile(s, q / 100)) for q in (50, 90, 99, 99.9)
        },
        "twins": twins,
        "grid": rows,
    }


def twin_similarities(embeddings: np.ndarray, scenes: np.ndarray) -> dict[str, Any]:
    """Over all N x N pairs (no clusters): the cosine of pairs of identical scenes, and how often
    a sample's nearest neighbour in the corpus is a re-render of its own scene."""
    sim = embeddings @ embeddings.T
    np.fill_diagonal(sim, -2.0)
    i, j = np.triu_indices(len(embeddings), 1)
    identical = scenes[i] == scenes[j]
    has_twin = np.array([c > 1 for c in map(Counter(scenes.tolist()).__getitem__, scenes.tolist())])
    nearest = sim.argmax(axis=1)
    return {
        "pairs": int(identical.sum()),
        "similarity_quantiles": {
            f"q{q}": float(np.quantile(sim[i, j][identical], q / 100)) for q in (10, 50, 90)
        },
        "pairs_at_or_above": {str(g): int((sim[i, j][identical] >= g).sum()) for g in GRID},
        "samples_with_twin": int(has_twin.sum()),
        "nearest_is_twin": float((scenes[nearest] == scenes)[has_twin].mean()) if has_twin.any() else None,
    }


def parameters(caption: str) -> dict[str, str]:
    """The scene parameters of a world caption ("two red circles at the left of a plain grey background")."""
    w = caption.split()
    return {
        "count": w[0],
        "colour": w[1],
        "shape": w[2].rstrip("s"),
        "position": w[5],
        "texture": w[8],
        "background": w[9],
    }


def choose_threshold(sweep: dict[str, Any], share: float) -> float:
    """The largest T of the sweep that removes at least ``share`` of the corpus (the lowest T if none)."""
    reaching = [row["threshold"] for row in sweep["grid"] if row["removed_share"] >= share]
    return max(reaching) if reaching else min(row["threshold"] for row in sweep["grid"])


def dropped(folder: Path, scene: dict[str, str], top: set[str]) -> dict[str, Any]:
    """What an arm's dedup/matches.parquet drops, per reason: samples, how many were in the top
    fraction (so the dedup, not the score rule, removed them), how many show the same scene as the
    sample kept for their group, and how many of those in the top lost their scene: the sample
    kept for the group is not in the top (a mismatched or worse-scored re-render kept instead)."""
    rows = pq.read_table(folder / "matches.parquet", columns=["uid", "reason", "match_id"]).to_pylist()
    out: dict[str, Any] = {}
    for reason in sorted({r["reason"] for r in rows}):
        mine = [r for r in rows if r["reason"] == reason]
        in_top = [r for r in mine if r["uid"] in top]
        out[reason] = {
            "samples": len(mine),
            "in_top": len(in_top),
            "same_scene_as_kept": sum(scene.get(r["uid"]) == scene.get(r["match_id"]) for r in mine),
            "in_top_kept_not_in_top": sum(r["match_id"] not in top for r in in_top),
            "same_parameter_as_kept": {
                key: sum(
                    parameters(scene[r["uid"]])[key] == parameters(scene[r["match_id"]])[key] for r in mine
                )
                for key in ("colour", "shape", "count", "position", "texture", "background")
            },
            "same_label_as_kept": sum(same_as_kept(scene, r, ("colour", "shape")) for r in mine),
            "same_background_and_texture_as_kept": sum(
                same_as_kept(scene, r, ("background", "texture")) for r in mine
            ),
        }
    return out


def same_as_kept(scene: dict[str, str], row: dict[str, Any], keys: tuple[str, ...]) -> bool:
    """Whether a matches.parquet row's sample and the sample kept for its group agree on ``keys``."""
    mine, kept = parameters(scene[row["uid"]]), parameters(scene[row["match_id"]])
    return all(mine[k] == kept[k] for k in keys)


def top_uids(dataset: Path, fraction: float) -> set[str]:
    """The uids of build_shards' --top-fraction: clip_score descending, uid ascending, ceil(F x N)."""
    ds = Dataset(str(dataset))
    rows = []
    for shard in ds.raw.complete_shards():
        table = ds.scores.shard(shard.index).table(["uid", "clip_score"])
        rows += [
            (-s, u)
            for u, s in zip(*(table.column(c).to_pylist() for c in ("uid", "clip_score")), strict=True)
        ]
    rows.sort()
    return {u for _, u in rows[: math.ceil(Decimal(str(fraction)) * len(rows))]}  # exact, as build_shards


def retrieval(run: dict[str, Any], out: Path) -> dict[str, Any]:
    """The run's final eval metrics (zero-shot and retrieval) and their learning curves."""
    summary = json.loads((out / "summary.json").read_text())["eval"]
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    for name, (key, _) in METRICS.items():
        run[name] = summary.get(key)
        run[f"curve_{name}"] = [(row["step"], row[key]) for row in rows if key in row]
    return run


def main() -> None:
    """Prepare (or reuse) every product, train both arms on every seed, print and save the results."""
    s, threshold, share, clusters = parse()
    setup_logging()
    s.workdir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    dataset, scorer = prepare_dataset(s, SCORE_ARGS)
    uids, embeddings, scenes = corpus_embeddings(dataset)
    sweep = semdedup_sweep(embeddings, scenes, clusters)
    scene, top_set = dict(zip(uids, scenes, strict=True)), top_uids(dataset, s.top_fraction)
    chosen_by = "--semantic-threshold" if threshold is not None else f"--semantic-share {share:g}"
    if threshold is None:
        threshold = choose_threshold(sweep, share)
    log.info("semantic threshold %.3f (%s)", threshold, chosen_by)
    for row in sweep["grid"]:
        log.info("sweep: %s", row)
    (s.workdir / "sweep.json").write_text(json.dumps({**sweep, "threshold": threshold}, indent=2))
    top = ["--top-fraction", str(s.top_fraction)]
    semantic = ["--semantic-threshold", str(threshold), "--semantic-clusters", str(clusters)]
    arms = [build_arm(s, dataset, "phash", top, []), build_arm(s, dataset, "semantic", top, semantic)]
    for arm in arms:
        arm["dropped"] = dropped(s.workdir / "arms" / arm["name"], scene, top_set)
        arm["epochs"] = s.steps * s.batch_size / arm["samples"]
        arm["runs"] = []
    eval_set = prepare_eval_world(s)
    for seed in s.seeds:  # interleaved, so a cut-short run still has pairs
        for arm in arms:
            run = train_run(s, arm, seed)
            arm["runs"].append(retrieval(run, s.workdir / "runs" / arm["name"] / f"seed_{seed}"))
            partial = [{k: v for k, v in a.items() if k != "runs"} | {"runs": a["runs"]} for a in arms]
            (s.workdir / "partial.json").write_text(json.dumps(partial, indent=2, default=str))
    for arm in arms:
        arm["stats"] = {name: spread([r[name] for r in arm["runs"]]) for name in METRICS}
    a, b = arms
    gaps = {
        name: {
            "gap": b["stats"][name]["mean"] - a["stats"][name]["mean"],
            "seed_spread": max(a["stats"][name]["range"], b["stats"][name]["range"]),
        }
        for name in METRICS
    }
    results = {
        "setup": {**asdict(s), "workdir": str(s.workdir)},
        "scorer": scorer,
        "semantic_threshold": threshold,
        "threshold_chosen_by": chosen_by,
        "sweep": sweep,
        "eval_classes": len(eval_set.classnames),
        "eval_images": len(eval_set.images),
        "arms": arms,
        "gaps": gaps,
        "wall_s": time.monotonic() - started,
        "reused_from_cache": REUSED,
    }
    (s.workdir / "results.json").write_text(json.dumps(results, indent=2, default=str))
    print_table(s, results)


def print_table(s: Setup, r: dict[str, Any]) -> None:
    """The sweep, what each arm dropped, and one row per arm and metric with seeds as columns."""
    sw = r["sweep"]
    print(
        f"\nSemDeDup sweep on {sw['samples']} scored samples, {sw['clusters']} clusters; "
        f"{sw['scene_repeats']} samples ({pct(sw['scene_repeat_share'], 1)}) repeat an earlier scene's "
        f"parameters; nearest neighbour in its cluster: "
        + ", ".join(f"{k} {v:.3f}" for k, v in sw["nearest_in_cluster_quantiles"].items())
    )
    print(
        text_table(
            ("T", "pairs", "identical scene", "removed", "share"),
            [
                (
                    f"{row['threshold']:g}",
                    row["pairs"],
                    "-" if row["pairs_identical_scene"] is None else pct(row["pairs_identical_scene"], 1),
                    row["removed"],
                    pct(row["removed_share"], 1),
                )
                for row in sw["grid"]
            ],
            indent=2,
        )
    )
    if sw.get("twins"):
        tw = sw["twins"]
        print(
            f"{tw['pairs']} pairs of identical scenes: cosine "
            + ", ".join(f"{k} {v:.3f}" for k, v in tw["similarity_quantiles"].items())
            + f"; the nearest neighbour of a sample with a twin is a twin for {pct(tw['nearest_is_twin'], 1)}"
            f" of {tw['samples_with_twin']}"
        )
    print(f"arm (b): --semantic-threshold {r['semantic_threshold']:g} ({r['threshold_chosen_by']})")
    arm_rows = []
    for arm in r["arms"]:
        cells = []
        for reason in ("exact_duplicate", "near_duplicate", "semantic_duplicate"):
            d = arm["dropped"].get(reason, {"samples": 0, "in_top": 0})
            cells.append(f"{d['samples']} ({d['in_top']})")
        sem = arm["dropped"].get("semantic_duplicate")
        lost = f"{sem['in_top_kept_not_in_top']}" if sem else "-"
        same = f"{sem['same_scene_as_kept']}" if sem else "-"
        arm_rows.append((arm["name"], *cells, same, lost, arm["samples"], pct(arm["mismatched_kept"], 1)))
        arm_rows[-1] += (f"{arm['epochs']:.1f}",)
    print(
        text_table(
            ("arm", "exact (top)", "near (top)", "semantic (top)", "sem. same scene", "sem. rep not in top")
            + (f"kept (top {s.top_fraction:g})", "mism.", "epochs"),
            arm_rows,
        )
    )
    for arm in r["arms"]:
        if "semantic_duplicate" in arm["dropped"]:
            same = arm["dropped"]["semantic_duplicate"]["same_parameter_as_kept"]
            print(
                f"{arm['name']}: semantic duplicates with the kept sample's "
                + ", ".join(f"{k} {v}" for k, v in same.items())
            )
    print(
        f"held-out world: {r['eval_classes']} classes; {s.steps} steps x {s.batch_size} per run; "
        f"scorer ROC AUC {r['scorer']['roc_auc']:.3f}"
    )
    rows = []
    for name, (_, label) in METRICS.items():
        for arm in r["arms"]:
            st = arm["stats"][name]
            rows.append(
                (
                    label,
                    arm["name"],
                    *(pct(run[name], 1) for run in arm["runs"]),
                    pct(st["mean"], 1),
                    pct(st["range"], 1),
                    pct(st["std"], 1),
                )
            )
        g = r["gaps"][name]
        rows.append((label, "(b) - (a)", *("" for _ in s.seeds), f"{100 * g['gap']:+.1f}", "", ""))
    print(text_table(("metric", "arm", *(f"seed {x}" for x in s.seeds), "mean", "max-min", "std"), rows))
    reused = f", {len(r['reused_from_cache'])} cached products reused" if r["reused_from_cache"] else ""
    print(f"{r['wall_s'] / 60:.1f} min{reused}; results in {shown(s.workdir / 'results.json')}")


if __name__ == "__main__":
    main()
