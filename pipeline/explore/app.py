"""The explorer's pages (Flask): search, filter, page through, open a sample, export a selection."""

from __future__ import annotations

import logging
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from flask import Flask, Response, abort, redirect, render_template, request
from werkzeug.datastructures import MultiDict

from pipeline.errors import UserInputError
from pipeline.explore.catalog import STATUSES, Catalog, Filters
from pipeline.explore.images import BenchmarkImages, SampleImages
from pipeline.explore.search import TARGETS, Query, Results, Searcher

log = logging.getLogger(__name__)

#: Query-string names of a search, in the order links write them.
QUERY_PARAMS = (
    "q",
    "like",
    "image",
    "target",
    "min_score",
    "max_score",
    "status",
    "reason",
    "group",
    "dups",
    "language",
)
EXPORT_FORMATS = {"txt": "text/plain", "npy": "application/octet-stream"}
_MAX_UPLOAD = 20 * 1024 * 1024
_THUMBNAIL_SIDE = 192


@dataclass
class Explorer:
    """What the pages read: the dataset's catalog, its images and the searcher."""

    name: str
    catalog: Catalog
    images: SampleImages
    benchmarks: BenchmarkImages
    searcher: Searcher
    page_size: int
    model: str


def query_from_args(args: MultiDict) -> Query:
    """A :class:`Query` from a page's query string; ``UserInputError`` for a malformed value."""
    return Query(
        text=args.get("q", "").strip(),
        like=args.get("like", "").strip(),
        image=args.get("image", "").strip(),
        target=args.get("target", "images") or "images",
        filters=Filters(
            min_score=_number(args, "min_score"),
            max_score=_number(args, "max_score"),
            status=args.get("status", "all") or "all",
            reason=args.get("reason", "").strip(),
            group=args.get("group", "").strip(),
            duplicates_only=args.get("dups", "") in ("1", "on", "true"),
            language=args.get("language", "").strip(),
        ),
    )


def _number(args: MultiDict, name: str) -> float | None:
    text = args.get(name, "").strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise UserInputError(f"{name} must be a number, got {text!r}") from None
    if not math.isfinite(value):
        raise UserInputError(f"{name} must be a finite number, got {text!r}")
    return value


def create_app(explorer: Explorer) -> Flask:
    """The Flask application serving ``explorer``."""
    app = Flask(__name__, template_folder=str(Path(__file__).parent / "templates"))
    app.config["MAX_CONTENT_LENGTH"] = _MAX_UPLOAD
    catalog, searcher = explorer.catalog, explorer.searcher

    def link(endpoint: str = "/", **changes: Any) -> str:
        """The current search's URL with some parameters changed (None or "" removes one)."""
        params = {k: request.args.get(k, "") for k in QUERY_PARAMS}
        params.update({k: ("" if v is None else str(v)) for k, v in changes.items()})
        kept = {k: v for k, v in params.items() if v}
        return endpoint + ("?" + urlencode(kept) if kept else "")

    def card(row: int, similarity: float | None = None) -> dict[str, Any]:
        record = catalog.record(int(row))
        record["similarity"] = similarity
        return record

    @app.errorhandler(UserInputError)
    def user_error(exc: UserInputError) -> tuple[str, int]:
        return render_template("error.html", explorer=explorer, message=str(exc), link=link), 400

    @app.errorhandler(413)
    def too_large(_exc: Exception) -> tuple[str, int]:
        message = f"the upload is larger than {_MAX_UPLOAD // (1024 * 1024)} MiB"
        return render_template("error.html", explorer=explorer, message=message, link=link), 413

    def current_page() -> tuple[Query, Results, int, list[dict[str, Any]]]:
        """The query of the request, its results, the page asked for and that page's cards."""
        query = query_from_args(request.args)
        results = searcher.run(query)
        page = _page_number(request.args, results.total, explorer.page_size)
        start = (page - 1) * explorer.page_size
        shown = range(start, min(start + explorer.page_size, results.total))
        sims = results.similarities
        cards = [card(results.rows[i], None if sims is None else float(sims[i])) for i in shown]
        return query, results, page, cards

    @app.get("/")
    def search() -> str:
        query, results, page, cards = current_page()
        return render_template(
            "search.html",
            explorer=explorer,
            query=query,
            results=results,
            cards=cards,
            page=page,
            pages=max(1, math.ceil(results.total / explorer.page_size)),
            start=(page - 1) * explorer.page_size,
            statuses=STATUSES,
            targets=TARGETS,
            reasons=catalog.reasons_present(),
            languages=catalog.languages_present(),
            formats=EXPORT_FORMATS,
            link=link,
            args=request.args,
        )

    @app.post("/upload")
    def upload() -> Response:
        file = request.files.get("image")
        if file is None or not file.filename:
            raise UserInputError("choose an image file to search with")
        token = searcher.remember_upload(file.read(), f"the uploaded file {file.filename!r}")
        return redirect(link("/", image=token, q=None, like=None, page=None))

    @app.get("/sample/<uid>")
    def sample(uid: str) -> str:
        record = catalog.row(uid)
        if record is None:
            abort(404, f"no sample {uid} in this dataset")
        group = catalog.group_members(record["group"]) if record["group"] else []
        members = [member for member in map(card, group) if member["uid"] != uid]
        copied = record["group"] if record["dedup_reason"] == "benchmark_duplicate" else ""
        return render_template(
            "sample.html",
            explorer=explorer,
            sample=record,
            members=members,
            benchmark_shown=bool(copied) and explorer.benchmarks.image(copied) is not None,
            link=link,
        )

    @app.get("/image/<uid>")
    def image(uid: str) -> Response:
        record = _known(catalog, uid)
        found = explorer.images.image(record["shard"], uid)
        if found is None:
            abort(404, f"raw shard {record['shard']} holds no image for {uid}")
        data, mime = found
        return Response(data, mimetype=mime, headers={"Cache-Control": "max-age=3600"})

    @app.get("/thumb/<uid>")
    def thumbnail(uid: str) -> Response:
        record = _known(catalog, uid)
        data = explorer.images.thumbnail(record["shard"], uid, _THUMBNAIL_SIDE)
        if data is None:
            abort(404, f"raw shard {record['shard']} holds no image for {uid}")
        return Response(data, mimetype="image/jpeg", headers={"Cache-Control": "max-age=3600"})

    @app.get("/benchmark/<path:benchmark_id>")
    def benchmark(benchmark_id: str) -> Response:
        data = explorer.benchmarks.image(benchmark_id)
        if data is None:
            abort(404, f"the picture of benchmark image {benchmark_id} is not available")
        return Response(data, mimetype=_sniff_mime(data), headers={"Cache-Control": "max-age=3600"})

    @app.get("/export.<fmt>")
    def export(fmt: str) -> Response:
        if fmt not in EXPORT_FORMATS:
            abort(404, f"export formats: {', '.join(EXPORT_FORMATS)}")
        results = searcher.run(query_from_args(request.args))
        uids = catalog.table.column("uid").take(results.rows).to_pylist()
        data = uid_list_bytes(uids, fmt)
        log.info("exported %d uids as %s", len(uids), fmt)
        return Response(
            data,
            mimetype=EXPORT_FORMATS[fmt],
            headers={"Content-Disposition": f"attachment; filename=selection.{fmt}"},
        )

    @app.get("/api/search")
    def api_search() -> dict[str, Any]:
        _, results, page, cards = current_page()
        return {
            "total": results.total,
            "capped": results.capped,
            "page": page,
            "page_size": explorer.page_size,
            "samples": cards,
        }

    return app


def uid_list_bytes(uids: list[str], fmt: str) -> bytes:
    """A uid list file's bytes in ``fmt`` (``txt`` or DataComp's ``npy``), as build_shards reads it."""
    from pipeline.build.uid_lists import write_uid_list

    with tempfile.TemporaryDirectory(prefix="corpusforge-export-") as folder:
        path = Path(folder) / f"selection.{fmt}"
        write_uid_list(uids, str(path))
        return path.read_bytes()


def _sniff_mime(data: bytes) -> str:
    if data.startswith(b"\x89PNG"):
        return "image/png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return "image/jpeg"


def _known(catalog: Catalog, uid: str) -> dict[str, Any]:
    record = catalog.row(uid)
    if record is None:
        abort(404, f"no sample {uid} in this dataset")
    return record


def _page_number(args: MultiDict, total: int, size: int) -> int:
    text = args.get("page", "1") or "1"
    if not text.isdigit() or int(text) < 1:
        raise UserInputError(f"page must be a positive whole number, got {text!r}")
    return min(int(text), max(1, math.ceil(total / size)))
