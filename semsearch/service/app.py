"""The FastAPI app: /health, /search, /embed, the search page at / and the docs at /docs.

Routes that touch the model hand a job to the micro-batcher and await it: the model,
FAISS and SQLite run on the batcher's worker thread, never on the event loop. A request
worth more than one batch goes in pieces that take turns with other requests, so that
questions arriving meanwhile are answered between two pieces, not after all of them.
Every error body is `{"detail": "one line", "errors": [...]}`, validation errors name
the field (`k`, `queries.3`, ...). (No `from __future__ import annotations` here:
FastAPI reads the route annotations at runtime, some of them local to `create_app`.)
"""

import asyncio
import contextlib
import hmac
import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import numpy as np
from fastapi import Depends, FastAPI, HTTPException, Request, Security
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from semsearch import __version__
from semsearch.errors import BatcherStoppedError, FilterError, InputError, SemsearchError
from semsearch.search.results import batch_to_json
from semsearch.service.batcher import MicroBatcher
from semsearch.service.config import ServeConfig
from semsearch.service.jobs import EmbedJob, Job, SearchJob, estimate_tokens, spans
from semsearch.service.live import LiveIndex
from semsearch.service.page import page_html
from semsearch.service.schemas import (
    BatchSearchResponse,
    EmbedResponse,
    ErrorResponse,
    HealthResponse,
    SearchResponse,
    request_models,
)

log = logging.getLogger("semsearch.service")

DESCRIPTION = """Answers new questions with known answers by cosine similarity over a
semsearch index. With an API key, every route but `/health` (and this page) needs
`Authorization: Bearer KEY`."""


def _error(
    status: int, detail: str, errors: list[dict[str, Any]] | None = None, **kw: Any
) -> JSONResponse:
    body: dict[str, Any] = {"detail": detail}
    if errors is not None:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, **kw)


def _field(location: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(part) for part in location]
    if parts and parts[0] == "body":
        parts = parts[1:]
    return ".".join(parts) or "body"


URL_KEYS = frozenset({"api_key", "apikey", "key", "token", "access_token"})
"""Query parameters a client might put a key in; the 401 then says to use the header."""

HEAVY = 20_000
"""Responses with more numbers or hits than this are serialised off the event loop."""


async def _json(build: Callable[[], dict[str, Any]], weight: int) -> Response:
    """JSON for the client; a big body (many vectors or hits) is built in a thread."""
    if weight < HEAVY:
        return JSONResponse(build())

    def dumps(value: Any) -> str:
        return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))

    def render() -> bytes:
        # Item by item: one json.dumps call holds the GIL until it returns, and over
        # megabytes that would stall the event loop and the batch worker alike.
        fields = []
        for name, value in build().items():
            inner = ",".join(map(dumps, value)) if isinstance(value, list) else None
            fields.append(f"{dumps(name)}:" + (f"[{inner}]" if inner is not None else dumps(value)))
        return ("{" + ",".join(fields) + "}").encode("utf-8")

    return Response(await run_in_threadpool(render), media_type="application/json")


class BodyLimit:
    """413 for a request body over the cap, by Content-Length or while streaming; 408
    (and the connection closed) when the body is not all in `timeout` seconds after the
    app started reading it: a client trickling bytes must not hold a connection forever."""

    def __init__(self, app: ASGIApp, max_bytes: int, timeout: float) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout = timeout

    def _too_large(self) -> HTTPException:
        return HTTPException(
            413, f"request body is larger than the server's limit of {self.max_bytes} bytes"
        )

    def _too_slow(self) -> HTTPException:
        return HTTPException(
            408,
            f"the request body did not arrive within {self.timeout:g} seconds",
            headers={"Connection": "close"},
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                response = _error(413, self._too_large().detail)
                await response(scope, receive, send)
                return
        seen = 0
        deadline: float | None = None
        complete = False

        async def limited() -> Message:
            nonlocal seen, deadline, complete
            if complete:  # after the body, receive() only waits for a disconnect
                return await receive()
            loop = asyncio.get_running_loop()
            deadline = deadline or loop.time() + self.timeout
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - loop.time()))
            except TimeoutError:
                raise self._too_slow() from None  # FastAPI re-raises these from body reading
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                complete = not message.get("more_body", False)
                if seen > self.max_bytes:
                    raise self._too_large()
            return message

        await self.app(scope, limited, send)


def create_app(
    live: LiveIndex,
    batcher: MicroBatcher,
    config: ServeConfig,
    *,
    manage: bool = True,
) -> FastAPI:
    """An app over one live index and one batcher; with `manage`, its lifespan starts
    and stops both (the batcher after the last in-flight request has finished)."""

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if manage:
            batcher.start()
            live.start()
        try:
            yield
        finally:
            if manage:  # queued jobs finish on the open index, then it is closed
                batcher.stop()
                live.close()

    app = FastAPI(
        title="semsearch",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.add_middleware(BodyLimit, max_bytes=config.max_body_bytes, timeout=config.body_timeout)
    SearchRequest, EmbedRequest = request_models(config, live.search.k)
    bearer = HTTPBearer(auto_error=False, description="the server's API key")
    key = config.api_key.encode("utf-8") if config.api_key else None

    def require_key(
        request: Request, credentials: HTTPAuthorizationCredentials | None = Security(bearer)
    ) -> None:
        given = credentials.credentials.encode("utf-8") if credentials else b""
        if key is not None and not hmac.compare_digest(given, key):
            # never echoed, never logged (guard.py blanks query values in the access log)
            in_url = not URL_KEYS.isdisjoint(name.lower() for name in request.query_params)
            raise HTTPException(
                401,
                (
                    "an API key in the URL is not accepted (URLs end up in logs): "
                    if in_url and not credentials
                    else "missing or wrong API key: "
                )
                + "send the header Authorization: Bearer KEY",
                headers={"WWW-Authenticate": "Bearer"},
            )

    guarded = [Depends(require_key)] if key else []
    token_limit = int(getattr(live.encoder, "max_tokens", 512))

    async def in_pieces(texts: list[str], make: Callable[[list[str]], Job]) -> list[Any]:
        """The batcher's answer for each piece of `texts`: one piece unless they are more
        than a batch's work, then pieces that take turns with other requests."""
        costs = [estimate_tokens(text, token_limit) for text in texts]
        pieces = [
            (make(texts[start:end]), end - start, sum(costs[start:end]))
            for start, end in spans(costs, config.max_batch_tokens, config.max_batch)
        ]
        if len(pieces) == 1:
            return [await batcher.run(*pieces[0])]
        return await batcher.run_pieces(pieces)

    errors: dict[int | str, dict[str, Any]] = {
        code: {"model": ErrorResponse} for code in ((401, 413, 422) if key else (413, 422))
    }

    takes = {"/search": list(SearchRequest.model_fields), "/embed": list(EmbedRequest.model_fields)}

    def message(error: dict[str, Any], path: str) -> str:
        """Pydantic's message; an unknown field (`{"q": ...}`) names the ones there are."""
        if error.get("type") == "extra_forbidden" and path in takes:
            return f"unknown field; {path} takes {', '.join(takes[path])}"
        return str(error.get("msg", "")).removeprefix("Value error, ")

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        found = [
            {
                "field": _field(e.get("loc", ())),
                "message": message(e, request.url.path),
                "type": e.get("type", ""),
            }
            for e in exc.errors()
        ]
        if any(e["type"] == "json_invalid" for e in found):
            return _error(422, "the request body is not valid JSON", found)
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in found)
        return _error(422, detail or "invalid request", found)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail), headers=getattr(exc, "headers", None))

    @app.exception_handler(InputError)
    async def input_error(_: Request, exc: InputError) -> JSONResponse:
        if isinstance(exc, FilterError):  # the message, as every face says it
            found = [{"field": "where", "message": str(exc), "type": "filter"}]
            return _error(422, str(exc), found)
        return _error(422, str(exc))

    @app.exception_handler(BatcherStoppedError)
    async def stopping(_: Request, exc: BatcherStoppedError) -> JSONResponse:
        return _error(503, str(exc), headers={"Retry-After": "1"})

    @app.exception_handler(SemsearchError)
    async def semsearch_error(_: Request, exc: SemsearchError) -> JSONResponse:
        log.error("semsearch: request failed: %s", exc)
        return _error(500, str(exc))

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        # uvicorn logs the traceback; the client gets JSON like every other error
        return _error(500, f"internal error ({type(exc).__name__}); see the server log")

    @app.get("/health", response_model=HealthResponse, tags=["service"])
    async def health() -> dict[str, Any]:
        """Liveness and the served index; never needs the API key."""
        return {"status": "ok", "index": live.name, "count": live.count, "version": live.version}

    @app.post(
        "/search",
        dependencies=guarded,
        responses={200: {"model": SearchResponse | BatchSearchResponse}, **errors},
        tags=["search"],
    )
    async def search(body: SearchRequest) -> Response:  # type: ignore[valid-type]
        """Rank known entries for `query` (one) or `queries` (a list), best first.

        `answered` says whether the top hit's cosine clears the threshold, at every k."""
        one = body.query is not None  # type: ignore[attr-defined]
        questions = [body.query] if one else body.queries  # type: ignore[attr-defined]
        k, threshold, mode = body.k, body.threshold, body.mode  # type: ignore[attr-defined]
        where = body.where  # type: ignore[attr-defined]
        where = () if where is None else (where,) if isinstance(where, str) else tuple(where)
        pieces = await in_pieces(questions, lambda part: SearchJob(part, k, threshold, mode, where))
        found = [result for piece in pieces for result in piece]
        if one:
            return JSONResponse(found[0].to_json())
        return await _json(
            lambda: batch_to_json(found), 100 * sum(len(result.hits) for result in found)
        )

    @app.post(
        "/embed",
        dependencies=guarded,
        responses={200: {"model": EmbedResponse}, **errors},
        tags=["search"],
    )
    async def embed(body: EmbedRequest) -> Response:  # type: ignore[valid-type]
        """L2-normalised sentence vectors from the index's own encoder."""
        texts = body.texts  # type: ignore[attr-defined]
        pieces = await in_pieces(texts, EmbedJob)
        vectors = pieces[0] if len(pieces) == 1 else np.vstack(pieces)
        return await _json(
            lambda: {"embeddings": vectors.tolist(), "dim": int(vectors.shape[1])},
            int(vectors.size),
        )

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> HTMLResponse:
        """The search page: static, so it loads without a key and asks for one on 401."""
        return HTMLResponse(page_html(live.name), headers={"Cache-Control": "no-cache"})

    return app
