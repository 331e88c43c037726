"""The HTTP API and the web page (FastAPI).

    GET  /          the web page (static files inside the package)
    GET  /healthz   {"status": "ok", "songs": N}
    GET  /version   package version, model fingerprint, index manifest summary, serving settings
    POST /recommend {"request": "...", "k": 10, "retriever": "dense", "exclude_ids": [...]}
                    or {"requests": ["...", ...], ...}
    POST /reload    read the index directory again and swap it in

Every error is JSON ``{"error": "<one line>"}``: 400 for a request the service cannot answer
(empty text, unknown retriever), 413 for one over a size limit, 422 for a body of the wrong
shape, 404 for an unknown path.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from importlib import resources

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException

from ..recommend.recommender import QUERY_DEFAULTS, RETRIEVERS, Recommendation
from .service import Generation, RecommendService


@dataclass(frozen=True)
class Limits:
    """Request size limits (their defaults: recommend.yaml's serve block).

    Attributes:
        max_request_chars: Longest request text.
        max_requests: Most requests in one ``{"requests": [...]}`` call.
        max_k: Most songs per request.
        max_exclude: Most ids in ``exclude_ids``.
        max_body_bytes: Largest request body.
    """

    max_request_chars: int
    max_requests: int
    max_k: int
    max_exclude: int
    max_body_bytes: int


class RecommendBody(BaseModel):
    """The body of ``POST /recommend``; exactly one of ``request`` / ``requests``."""

    model_config = ConfigDict(extra="forbid")

    request: str | None = None
    requests: list[str] | None = None
    k: int = Field(QUERY_DEFAULTS["k"], description="songs per request")
    retriever: str | None = Field(
        None, description="dense, lexical or hybrid; default: the server's"
    )
    exclude_ids: list[str] = Field(default_factory=list, description="song ids never returned")


class ClientError(Exception):
    """A request the service refuses; becomes ``{"error": message}`` with ``status``."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def create_app(service: RecommendService, limits: Limits) -> FastAPI:
    """The FastAPI app over a running `RecommendService`."""
    app = FastAPI(title="melscribe-recommend", docs_url=None, redoc_url=None)
    static = resources.files(__package__) / "static"
    app.mount("/static", StaticFiles(directory=str(static)), name="static")

    @app.exception_handler(ClientError)
    async def client_error(_: Request, err: ClientError) -> JSONResponse:
        return JSONResponse({"error": str(err)}, status_code=err.status)

    @app.exception_handler(RequestValidationError)
    async def bad_shape(_: Request, err: RequestValidationError) -> JSONResponse:
        return JSONResponse({"error": _one_line(err)}, status_code=422)

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, err: HTTPException) -> JSONResponse:
        return JSONResponse({"error": str(err.detail)}, status_code=err.status_code)

    @app.exception_handler(Exception)
    async def server_error(_: Request, err: Exception) -> JSONResponse:
        return JSONResponse({"error": f"internal error: {_first_line(err)}"}, status_code=500)

    @app.middleware("http")
    async def body_limit(request: Request, call_next):
        # Content-Length is checked before the body is read; a chunked body is read whole by
        # the handler, so it is measured there instead.
        size = request.headers.get("content-length")
        if size is not None and size.isdigit() and int(size) > limits.max_body_bytes:
            return JSONResponse(
                {
                    "error": f"request body of {size} bytes is over the limit of {limits.max_body_bytes}"
                },
                status_code=413,
            )
        return await call_next(request)

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(str(static / "index.html"))

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok", "songs": service.generation.manifest["num_songs"]}

    @app.get("/version")
    async def version() -> dict:
        return {**service.version(), "limits": limits.__dict__}

    @app.post("/recommend")
    async def recommend(body: RecommendBody):
        texts, retriever = _check(body, limits, service.default_retriever)
        exclude = set(body.exclude_ids)
        # each excluded id removes at most one song: asking for that many more always leaves k
        futures = service.submit(texts, body.k + len(exclude), retriever)
        try:
            answers = [await asyncio.wrap_future(f) for f in futures]
        except ValueError as err:  # the recommender's own input checks
            raise ClientError(_first_line(err)) from None
        responses = [
            _response(text, retriever, generation, recs, exclude, body.k)
            for text, (generation, recs) in zip(texts, answers)
        ]
        return responses[0] if body.request is not None else {"responses": responses}

    @app.post("/reload")
    async def reload():
        try:
            index = await asyncio.to_thread(service.reload)
        except Exception as err:  # the old index keeps serving; say why the new one did not load
            return JSONResponse(
                {"error": f"reload failed, the previous index is still served: {_first_line(err)}"},
                status_code=500,
            )
        return {"status": "reloaded", "index": index}

    return app


def _check(body: RecommendBody, limits: Limits, default_retriever: str) -> tuple[list[str], str]:
    if (body.request is None) == (body.requests is None):
        raise ClientError('give either "request" (one text) or "requests" (a list of texts)')
    texts = [body.request] if body.request is not None else body.requests
    if not texts:
        raise ClientError('"requests" is empty: give at least one request')
    if len(texts) > limits.max_requests:
        raise ClientError(
            f"{len(texts)} requests in one call, the limit is {limits.max_requests}", status=413
        )
    for i, text in enumerate(texts):
        where = "request" if body.request is not None else f"requests[{i}]"
        if not text.strip():
            raise ClientError(
                f"{where} is empty: write what you want to hear, e.g. 'calm piano for studying'"
            )
        if len(text) > limits.max_request_chars:
            raise ClientError(
                f"{where} has {len(text)} characters, the limit is {limits.max_request_chars}",
                status=413,
            )
    if not 1 <= body.k <= limits.max_k:
        raise ClientError(f"k must be between 1 and {limits.max_k}, got {body.k}")
    if len(body.exclude_ids) > limits.max_exclude:
        raise ClientError(
            f"{len(body.exclude_ids)} exclude_ids, the limit is {limits.max_exclude}", status=413
        )
    retriever = body.retriever or default_retriever
    if retriever not in RETRIEVERS:
        raise ClientError(f"unknown retriever {retriever!r}; valid: {', '.join(RETRIEVERS)}")
    return texts, retriever


def _response(
    text: str,
    retriever: str,
    generation: Generation,
    recs: list[Recommendation],
    exclude: set[str],
    k: int,
) -> dict:
    score_type = generation.score_type(retriever)
    kept = [r for r in recs if r.song_id not in exclude][:k]
    return {
        "request": text,
        "retriever": retriever,
        "results": [
            {
                "id": r.song_id,
                "rank": rank,
                "score": r.score,
                "score_type": score_type,
                "title": r.title,
                "artist": r.artist,
                "descriptors": r.descriptors,
                "matching": [{"descriptor": d, "score": s} for d, s in r.explanation],
                "link": generation.links.get(r.song_id),
            }
            for rank, r in enumerate(kept, start=1)
        ],
    }


def _first_line(err: Exception) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


def _one_line(err: RequestValidationError) -> str:
    """Pydantic's error list as one line: ``body.k: Input should be a valid integer; ...``."""
    parts = []
    for e in err.errors():
        where = ".".join(str(x) for x in e.get("loc", ()))
        if e.get("type") == "json_invalid":
            parts.append(f"the body is not valid JSON ({e.get('ctx', {}).get('error', e['msg'])})")
        else:
            parts.append(f"{where}: {e['msg']}")
    return "; ".join(parts)[:500] or json.dumps(err.errors())[:500]
