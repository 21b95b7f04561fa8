"""Zero-shot classification and image-text retrieval of a CLIP model on held-out data.

Three kinds of evaluation set, each prefixing its metric names:

- ``world``: a labelled image table (a synthetic world written by ``corpusforge synth``):
  zero-shot over its classes and retrieval against the true captions;
- ``folder``: any ImageFolder-style directory (class = sub-folder name), zero-shot only;
- ``val``: held-out WebDataset shards, retrieval only.

The world and the folder are read from local disk: the trainer checks remote ones where they
are and copies them to the local cache first (:mod:`pipeline.remote_cache`); ``source`` is then
the URL the user gave, which error messages name.

Retrieval follows the Flickr30k/COCO protocol with one caption per image: image->text R@K is
the fraction of images whose own caption is among the K most similar captions, and the reverse.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from pipeline.errors import UserInputError
from pipeline.remote import exists, url_to_fs
from pipeline.train.data import decode_image
from pipeline.train.tario import Counters, read_shard

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")
# Prompts that read like the synthetic world's captions ("two red circles at the left of ...").
WORLD_TEMPLATES = (
    "one {} at the centre of a plain grey background",
    "a {}",
    "{}",
    "one {}",
)
# The same prompts in Chinese, for a world whose world.json has ``labels_zh`` (``--language zh|mixed``).
WORLD_TEMPLATES_ZH = (
    "一个{}，位于纯灰色背景的中央",
    "一张{}的图片",
    "{}",
    "一个{}",
)
RECALL_AT = (1, 5, 10)


@dataclass
class EvalSet:
    """Held-out images (paths or encoded bytes), with class labels and/or paired captions."""

    name: str
    images: list[Path | bytes]
    labels: list[int] | None = None
    classnames: list[str] = field(default_factory=list)
    templates: Sequence[str | Callable[[str], str]] = ()
    captions: list[str] | None = None


def check_world(folder: str | Path) -> None:
    """Raise ``UserInputError`` unless ``folder`` (a path or URL) holds a labelled image table."""
    root = str(folder).rstrip("/")
    missing = [n for n in ("world.json", "world.parquet") if not exists(f"{root}/{n}", "--eval-world")]
    if missing:
        raise UserInputError(
            f"--eval-world {folder}: no {' or '.join(missing)} in it; write a held-out world with "
            "`corpusforge synth --out DIR --mismatch-fraction 0 --benchmark-images 0 --planted-duplicates 0`"
        )


def world_eval_set(folder: str | Path, source: str | None = None) -> EvalSet:
    """The labelled image table in local ``folder``: ``world.json`` (``labels``: the class names) and
    ``world.parquet`` (``file``, ``label``, ``true_caption`` per image), as ``corpusforge synth`` writes."""
    folder = Path(folder)
    check_world(folder)
    try:
        classnames = json.loads((folder / "world.json").read_text())["labels"]
        rows = pq.read_table(folder / "world.parquet", columns=["file", "label", "true_caption"]).to_pylist()
    except (OSError, ValueError, KeyError) as exc:
        shown = source or folder
        raise UserInputError(f"--eval-world {shown}: not a readable synthetic world ({exc})") from exc
    index = {name: i for i, name in enumerate(classnames)}
    return EvalSet(
        name="world",
        images=[folder / row["file"] for row in rows],
        labels=[index[row["label"]] for row in rows],
        classnames=classnames,
        templates=WORLD_TEMPLATES,
        captions=[row["true_caption"] for row in rows],
    )


def world_eval_sets(folder: str | Path, source: str | None = None) -> list[EvalSet]:
    """:func:`world_eval_set`, and for a world with Chinese class names (``labels_zh`` in
    ``world.json``) also ``world_zh``: zero-shot over the same pictures with Chinese prompts
    ("一张红色圆形的图片"); its retrieval is the ``world`` set's (the same captions)."""
    world = world_eval_set(folder, source)
    try:
        names_zh = json.loads((Path(folder) / "world.json").read_text(encoding="utf-8")).get("labels_zh")
    except (OSError, ValueError) as exc:
        raise UserInputError(
            f"--eval-world {source or folder}: not a readable synthetic world ({exc})"
        ) from exc
    if not names_zh:
        return [world]
    if len(names_zh) != len(world.classnames):
        raise UserInputError(
            f"--eval-world {source or folder}: world.json has {len(names_zh)} labels_zh for "
            f"{len(world.classnames)} labels"
        )
    chinese = EvalSet(
        name="world_zh",
        images=world.images,
        labels=world.labels,
        classnames=list(names_zh),
        templates=WORLD_TEMPLATES_ZH,
    )
    return [world, chinese]


def folder_eval_set(
    folder: str | Path, templates: Sequence[str | Callable[[str], str]], source: str | None = None
) -> EvalSet:
    """A local ImageFolder-style directory: ``folder/CLASS/*.jpg``; ``_`` in class names reads as a space."""
    shown = source or folder
    folder = Path(folder)
    if not folder.is_dir():
        raise UserInputError(f"--zeroshot-dir {shown}: no such directory")
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    images: list[Path | bytes] = []
    labels = []
    for i, name in enumerate(classes):
        for path in sorted((folder / name).rglob("*")):
            if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
                images.append(path)
                labels.append(i)
    if len(classes) < 2 or not images:
        raise UserInputError(
            f"--zeroshot-dir {shown}: needs at least two class sub-folders with images "
            f"(found {len(classes)} classes, {len(images)} images)"
        )
    return EvalSet(
        name="folder",
        images=images,
        labels=labels,
        classnames=[c.replace("_", " ") for c in classes],
        templates=templates,
    )


def shard_eval_set(urls: list[str], max_samples: int) -> EvalSet:
    """Up to ``max_samples`` (image, caption) pairs from held-out shards, in order."""
    counters = Counters()
    images: list[Path | bytes] = []
    captions: list[str] = []
    for url in urls:
        for sample in read_shard(url, counters):
            try:
                captions.append(sample.text.decode("utf-8"))
            except UnicodeDecodeError:
                counters.corrupt_samples += 1
                continue
            images.append(sample.image)
            if len(images) >= max_samples:
                break
        if len(images) >= max_samples:
            break
    if len(images) < 2:
        raise UserInputError(f"--val-shards: fewer than two readable samples in {len(urls)} shards")
    if counters.corrupt_samples or counters.corrupt_shards:
        log.warning(
            "--val-shards: skipped %d corrupt samples, %d unreadable shards",
            counters.corrupt_samples,
            counters.corrupt_shards,
        )
    return EvalSet(name="val", images=images, captions=captions)


def load_templates(spec: str) -> Sequence[str | Callable[[str], str]]:
    """``simple`` (7 prompts) or ``openai`` (80) from open_clip, or a file (path or URL) with one
    ``{}`` prompt a line."""
    from open_clip.zero_shot_metadata import OPENAI_IMAGENET_TEMPLATES, SIMPLE_IMAGENET_TEMPLATES

    if spec == "simple":
        return SIMPLE_IMAGENET_TEMPLATES
    if spec == "openai":
        return OPENAI_IMAGENET_TEMPLATES
    if not exists(spec, "--zeroshot-templates"):
        raise UserInputError(f"--zeroshot-templates {spec!r}: not 'simple', 'openai' nor a file")
    fs, path = url_to_fs(spec, "--zeroshot-templates")
    with fs.open(path, "r", encoding="utf-8") as handle:
        text = handle.read()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines or not all("{}" in line for line in lines):
        raise UserInputError(f"--zeroshot-templates {spec}: every line needs a '{{}}' for the class name")
    return lines


def evaluate(
    model: Any,
    preprocess: Callable[[Any], Any],
    tokenizer: Callable[[list[str]], Any],
    sets: list[EvalSet],
    device: str,
    batch_size: int = 256,
    autocast: Callable[[], AbstractContextManager[Any]] = nullcontext,
) -> dict[str, float]:
    """Every metric of every set, named ``SET/zeroshot_top1``, ``SET/image_to_text_R@1`` ..."""
    import torch
    from open_clip.zero_shot_classifier import build_zero_shot_classifier

    was_training = model.training
    model.eval()
    metrics: dict[str, float] = {}
    embedded: dict[
        int, tuple[Any, list[int]]
    ] = {}  # sets sharing their pictures (world, world_zh) embed them once
    try:
        with torch.no_grad(), autocast():
            for eval_set in sets:
                if id(eval_set.images) not in embedded:
                    embedded[id(eval_set.images)] = _image_features(
                        model, preprocess, eval_set, device, batch_size
                    )
                features, kept = embedded[id(eval_set.images)]
                if eval_set.labels is not None:
                    classifier = build_zero_shot_classifier(
                        model, tokenizer, eval_set.classnames, eval_set.templates, 10, device
                    )
                    labels = torch.tensor([eval_set.labels[i] for i in kept], device=device)
                    metrics.update(_zero_shot(features, classifier, labels, eval_set.name))
                if eval_set.captions is not None:
                    texts = _text_features(
                        model, tokenizer, [eval_set.captions[i] for i in kept], device, batch_size
                    )
                    metrics.update(retrieval_metrics(features, texts, eval_set.name))
    finally:
        model.train(was_training)
    return metrics


def retrieval_metrics(image: Any, text: Any, prefix: str) -> dict[str, float]:
    """Recall@1/5/10 both ways for paired rows of normalised ``image`` and ``text`` features."""
    sims = image.float() @ text.float().T
    metrics = {}
    for direction, scores in (("image_to_text", sims), ("text_to_image", sims.T)):
        own = scores.diagonal()[:, None]
        rank = (scores > own).sum(dim=1)  # captions scoring strictly higher than the true one
        for k in RECALL_AT:
            metrics[f"{prefix}/{direction}_R@{k}"] = (rank < k).float().mean().item()
    return metrics


def _zero_shot(features: Any, classifier: Any, labels: Any, prefix: str) -> dict[str, float]:
    logits = features.float() @ classifier.float()
    metrics = {}
    for k in (1, 5):
        if k <= logits.shape[1]:
            top = logits.topk(k, dim=1).indices
            metrics[f"{prefix}/zeroshot_top{k}"] = (top == labels[:, None]).any(dim=1).float().mean().item()
    return metrics


def _image_features(
    model: Any, preprocess: Callable[[Any], Any], eval_set: EvalSet, device: str, batch_size: int
) -> tuple[Any, list[int]]:
    import torch

    def load(item: Path | bytes) -> Any:
        try:
            data = item if isinstance(item, bytes) else item.read_bytes()
            return preprocess(decode_image(data))
        except Exception as exc:  # noqa: BLE001 - PIL raises many types for damaged files
            log.warning(
                "%s eval: skipping unreadable image %s (%s)",
                eval_set.name,
                item if isinstance(item, Path) else "from shard",
                exc,
            )
            return None

    features, kept = [], []
    with ThreadPoolExecutor(4) as pool:
        for start in range(0, len(eval_set.images), batch_size):
            chunk = list(pool.map(load, eval_set.images[start : start + batch_size]))
            good = [i for i, pixels in enumerate(chunk) if pixels is not None]
            if good:
                pixels = torch.stack([chunk[i] for i in good]).to(device)
                features.append(model.encode_image(pixels, normalize=True).float())
                kept.extend(start + i for i in good)
    if not kept:
        raise UserInputError(f"{eval_set.name} eval: no readable image")
    return torch.cat(features), kept


def _text_features(model: Any, tokenizer: Any, texts: list[str], device: str, batch_size: int) -> Any:
    import torch

    out = [
        model.encode_text(tokenizer(texts[i : i + batch_size]).to(device), normalize=True).float()
        for i in range(0, len(texts), batch_size)
    ]
    return torch.cat(out)
