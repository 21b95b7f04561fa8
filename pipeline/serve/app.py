"""The HTTP API (Flask): JSON in, JSON out; every bad input is a 4xx with a JSON error naming it.

- ``POST /v1/embed/text`` ``{"texts": [...]}`` -> ``{"model", "dim", "embeddings"}``
- ``POST /v1/embed/image`` ``{"images": [base64, ...]}`` or a multipart upload (every file part,
  in order) -> the same
- ``POST /v1/similarity`` ``{"texts": [...], "images": [...]}`` -> cosine similarities: texts x
  images when both are given, else texts x texts or images x images
- ``GET /v1/model`` (model.json), ``GET /healthz``, ``GET /metrics`` (the batcher's counters)
"""

from __future__ import annotations

import base64
import binascii
import logging
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

import numpy as np
from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException

from pipeline.serve.batcher import Batcher
from pipeline.serve.encoders import Encoders
from pipeline.serve.preprocess import UndecodableImage, decode_image

log = logging.getLogger(__name__)


class BadRequest(Exception):
    """A request the API refuses: HTTP 400 with this message."""


def create_app(encoders: Encoders, batcher: Batcher, max_items: int, max_body: int, timeout: float) -> Flask:
    """The Flask application over loaded encoders and a started batcher."""
    app = Flask("corpusforge.serve")
    app.config["MAX_CONTENT_LENGTH"] = max_body

    def embed(kind: str, inputs: np.ndarray) -> np.ndarray:
        try:
            return batcher.submit(kind, inputs).result(timeout=timeout)
        except FutureTimeout as exc:
            raise TimeoutError(f"no {kind} batch ran within {timeout:g} s") from exc

    def texts_of(body: dict[str, Any], required: bool) -> list[str]:
        texts = body.get("texts")
        if texts is None and not required:
            return []
        if not isinstance(texts, list) or not texts:
            raise BadRequest("'texts' must be a non-empty list of strings")
        for index, text in enumerate(texts):
            if not isinstance(text, str):
                raise BadRequest(f"texts[{index}] must be a string, not {type(text).__name__}")
        return texts

    def images_of(body: dict[str, Any], required: bool) -> list[Any]:
        images = body.get("images")
        if images is None and not required:
            return []
        if not isinstance(images, list) or not images:
            raise BadRequest("'images' must be a non-empty list of base64 strings")
        decoded = []
        for index, item in enumerate(images):
            if not isinstance(item, str):
                raise BadRequest(f"images[{index}] must be a base64 string, not {type(item).__name__}")
            data = item.split(",", 1)[1] if item.startswith("data:") and "," in item else item
            try:
                raw = base64.b64decode(data, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise BadRequest(f"images[{index}] is not valid base64 ({exc})") from exc
            decoded.append(_decode(raw, f"images[{index}]"))
        return decoded

    def json_body() -> dict[str, Any]:
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            raise BadRequest("the body must be a JSON object (Content-Type: application/json)")
        return body

    def check_count(count: int) -> None:
        if count > max_items:
            raise BadRequest(f"{count} items in one request; at most {max_items} (--max-items)")

    def reply(vectors: np.ndarray) -> Any:
        return jsonify(model=encoders.manifest["model"], dim=encoders.dim, embeddings=vectors.tolist())

    @app.post("/v1/embed/text")
    def embed_text() -> Any:
        texts = texts_of(json_body(), required=True)
        check_count(len(texts))
        return reply(embed("text", encoders.tokens(texts)))

    @app.post("/v1/embed/image")
    def embed_image() -> Any:
        if request.files:
            uploads = [(name, f) for name, f in request.files.items(multi=True)]
            check_count(len(uploads))
            images = [
                _decode(f.read(), f"upload {i} ({name}: {f.filename})") for i, (name, f) in enumerate(uploads)
            ]
        else:
            body = json_body()
            check_count(len(body.get("images") or []))
            images = images_of(body, required=True)
        return reply(embed("image", encoders.pixels(images)))

    @app.post("/v1/similarity")
    def similarity() -> Any:
        body = json_body()
        check_count(len(body.get("texts") or []) + len(body.get("images") or []))
        texts, images = texts_of(body, required=False), images_of(body, required=False)
        if not texts and not images:
            raise BadRequest("give 'texts', 'images' or both")
        text_vectors = embed("text", encoders.tokens(texts)) if texts else None
        image_vectors = embed("image", encoders.pixels(images)) if images else None
        rows, columns = (
            ("texts", "images") if texts and images else ("texts", "texts") if texts else ("images", "images")
        )
        left = text_vectors if rows == "texts" else image_vectors
        right = image_vectors if columns == "images" else text_vectors
        return jsonify(
            model=encoders.manifest["model"], rows=rows, columns=columns, similarity=(left @ right.T).tolist()
        )

    @app.before_request
    def refuse_large_bodies() -> Any:
        # Refused before the body is parsed; a moderately large body is read and dropped first, so
        # the client gets the JSON answer instead of a connection reset (unread data -> RST).
        length = request.content_length
        if length is not None and length > max_body:
            if length <= _DRAIN_FACTOR * max_body:
                stream = request.environ["wsgi.input"]
                left = length
                while left > 0 and (chunk := stream.read(min(left, 1 << 16))):
                    left -= len(chunk)
            return jsonify(error=_too_large(max_body)), 413
        return None

    @app.get("/v1/model")
    def model() -> Any:
        return jsonify(encoders.manifest)

    @app.get("/healthz")
    def healthz() -> Any:
        return jsonify(status="ok", model=encoders.manifest["model"])

    @app.get("/metrics")
    def metrics() -> Any:
        return jsonify(batcher.metrics())

    @app.errorhandler(BadRequest)
    def bad_request(exc: BadRequest) -> Any:
        return jsonify(error=str(exc)), 400

    @app.errorhandler(TimeoutError)
    def timed_out(exc: TimeoutError) -> Any:
        return jsonify(error=str(exc)), 503

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Any:
        message = exc.description or exc.name
        if exc.code == 413:
            message = _too_large(max_body)
        return jsonify(error=message), exc.code

    return app


_DRAIN_FACTOR = 8


def _too_large(max_body: int) -> str:
    return f"the request body is larger than {max_body} bytes (--max-body-mb)"


def _decode(raw: bytes, what: str) -> Any:
    try:
        return decode_image(raw)
    except UndecodableImage as exc:
        raise BadRequest(f"{what} is not a decodable image ({exc})") from exc
