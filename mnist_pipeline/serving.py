"""`mnist serve`: a registered version (or a `.keras` file) over HTTP, with a page to draw a digit on.

    GET  /         the drawing page (draw.html): a canvas, the answer, the 28x28 image the model saw
    POST /predict  a PNG or JPEG, as the request body or as the multipart field `file`
    GET  /health   {"status": "ok", "model": "cnn@v3"}
    GET  /model    the answering version's record summary

An upload is prepared exactly as `mnist predict` prepares a photo (`images.decode_gray`, then
`images.mnist_style`) and predicted through `predict.predict`, so both give the same answer for the
same file. A reference through an alias (`cnn@champion`) is resolved again on every request: when
the champion moves, the next answer comes from the new version (and names it). Bad input is a 4xx
with `mnist predict`'s one-line reason (413 over the byte limit), and the server goes on.
"""

from __future__ import annotations

import base64
import io
import threading
from dataclasses import dataclass
from email.parser import BytesParser
from email.policy import HTTP
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Request  # at module level: FastAPI reads the endpoints' annotations from here
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.concurrency import run_in_threadpool

from mnist_pipeline import registry
from mnist_pipeline.errors import PipelineError
from mnist_pipeline.images import MAX_FILE_BYTES, decode_gray, mnist_style

PAGE = Path(__file__).with_name("draw.html")
LIMIT = MAX_FILE_BYTES + 64 * 1024  # a request body: the image's limit (`mnist predict`'s) and a multipart's framing
DRAIN = 4 * LIMIT  # an upload over the limit is read (and dropped) this far, so the client sees the 413


@dataclass
class Loaded:
    """The version answering now: its name, record and Keras model."""

    shown: str
    record: dict[str, Any]
    model: Any


class ModelUnavailable(PipelineError):
    """The served model cannot be read now (its version moved to a file that is gone or swapped): the server's
    fault, not the upload's, so the answer is 503, and the next request tries again."""


class Source:
    """Where the model comes from: a registry reference (followed on every request) or a `.keras` file."""

    def __init__(self, ref: str, root: Path) -> None:
        from mnist_pipeline import predict as predicting

        self.ref, self.root, self.lock, self.loaded = ref, root, threading.Lock(), None
        if ref.endswith(".keras"):
            path = Path(ref)
            self.loaded = Loaded(ref, predicting.local_record(path), predicting.load_model(path))
        else:
            self.current()  # a bad reference fails at start, in one line

    def current(self) -> Loaded:
        """The version the reference names now; loaded again only when it moved."""
        from mnist_pipeline import predict as predicting

        if self.ref.endswith(".keras"):
            assert self.loaded is not None
            return self.loaded
        name, number = registry.resolve(self.root, self.ref)
        shown = f"{name}@v{number}"
        with self.lock:
            if self.loaded is None or self.loaded.shown != shown:
                record = registry.read_record(self.root, name, number)
                if problem := registry.record_problem(record, judged=False):
                    raise PipelineError(f"{shown}: {problem}")
                model = predicting.load_model(registry.checked_model_path(self.root, name, number, record))
                self.loaded = Loaded(shown, record, model)
            return self.loaded


def png_of(image: np.ndarray) -> str:
    """A [0, 1] gray image as a base64 PNG (the prepared 28x28 the page shows)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.round(image * 255).astype(np.uint8)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def upload_bytes(body: bytes, content_type: str) -> bytes:
    """The image of a request: the body itself, or the multipart field `file`."""
    if not content_type.startswith("multipart/form-data"):
        return body
    message = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + body)
    for part in message.iter_parts() if message.is_multipart() else []:
        if part.get_param("name", header="content-disposition") == "file":
            return part.get_payload(decode=True) or b""
    raise PipelineError("multipart upload without a field named 'file'")


def answer(source: Source, data: bytes, name: str = "upload") -> dict[str, Any]:
    """`mnist predict`'s row for one uploaded image, with the version and the 28x28 image the model saw."""
    from mnist_pipeline import predict as predicting

    try:
        image = mnist_style(decode_gray(data, name, len(data)))
    except PipelineError as error:  # mnist_style's reasons do not name the input: `mnist predict` prefixes it too
        raise PipelineError(str(error) if str(error).startswith(name) else f"{name}: {error}") from None
    try:
        loaded = source.current()
    except (PipelineError, OSError) as error:
        raise ModelUnavailable(f"model {source.ref}: {error}") from None
    with source.lock:  # one prediction at a time: a Keras model is not made for concurrent calls
        row = predicting.predict(loaded.model, loaded.record, [predicting.Item(name, image)])[0]
    return {**row, "model": loaded.shown, "prepared_png": png_of(image)}


def summary(loaded: Loaded) -> dict[str, Any]:
    """What /model says of the answering version."""
    record = loaded.record
    keys = ("name", "version", "dataset", "blessed", "gate_reason", "registered_at", "model_sha256")
    return {"model": loaded.shown, "metrics": record.get("metrics", {}), "model_spec": record.get("model_spec"),
            **{key: record[key] for key in keys if key in record}}


def make_app(source: Source) -> FastAPI:
    """The FastAPI application over `source`."""
    app = FastAPI(title="mnist serve", docs_url=None, redoc_url=None)

    def refused(status: int, reason: str) -> JSONResponse:
        return JSONResponse({"error": reason}, status_code=status)

    @app.get("/", response_class=HTMLResponse)
    def page() -> str:
        return PAGE.read_text()

    @app.get("/health")
    def health() -> Any:
        try:
            return {"status": "ok", "model": source.current().shown}
        except PipelineError as error:
            return refused(503, str(error))

    @app.get("/model")
    def model() -> Any:
        try:
            return summary(source.current())
        except PipelineError as error:
            return refused(503, str(error))

    @app.post("/predict")
    async def predict(request: Request) -> Any:
        body, total = bytearray(), 0
        async for chunk in request.stream():  # counted as it comes: no length header is trusted
            total += len(chunk)
            if total <= LIMIT:
                body += chunk
            elif total > DRAIN:  # read past the limit (so the client hears the 413), but not for ever
                break
        if total > LIMIT:
            return refused(413, f"upload: {'over ' * (total > DRAIN)}{total / 2**20:.1f} MiB, over the limit of "
                                f"{MAX_FILE_BYTES / 2**20:.1f} MiB")
        try:
            data = upload_bytes(bytes(body), request.headers.get("content-type", ""))
            if len(data) > MAX_FILE_BYTES:
                return refused(413, f"upload: file is {len(data) / 2**20:.1f} MiB, over the limit of "
                                    f"{MAX_FILE_BYTES / 2**20:.1f} MiB")
            return await run_in_threadpool(answer, source, data)  # the event loop keeps answering /health
        except ModelUnavailable as error:
            return refused(503, str(error))
        except PipelineError as error:
            return refused(400, str(error))

    return app
