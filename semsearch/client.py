"""A small Python client for `semsearch serve`: what an FAQ bot imports.

    from semsearch.client import Client

    client = Client("http://127.0.0.1:8000", api_key=None)
    for hit in client.search("how do I export a PDF?", k=3, threshold=0.5):
        print(hit.rank, round(hit.score, 3), hit.id, hit.answer)

`threshold` left out (None) uses the server's default, else the index's own; "none"
turns it off; with one in force only the hits that clear it come back.

Standard library only (urllib), so a bot needs no HTTP package. Results are the same
`Hit` / `SearchResult` that `SearchEngine` returns (semsearch.search.results). Failures raise
typed errors (semsearch.errors, all `SemsearchError`) carrying the server's own message.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from semsearch.errors import (  # defined there; importable from here too
    AuthenticationError,
    RequestRejectedError,
    ServerError,
    ServiceError,
    ServiceUnavailableError,
)
from semsearch.search.results import Hit, SearchResult, batch_from_json

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "AuthenticationError",
    "Client",
    "Hit",
    "RequestRejectedError",
    "SearchResult",
    "ServerError",
    "ServiceError",
    "ServiceUnavailableError",
]


_BY_STATUS: dict[int, type[ServiceError]] = {
    401: AuthenticationError,
    413: RequestRejectedError,
    422: RequestRejectedError,
    503: ServiceUnavailableError,
}


class _RefuseRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is an error: following it would send the API key to wherever the
    Location header points, and would turn a POST into a GET."""

    def redirect_request(
        self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str
    ) -> None:
        raise ServiceError(
            f"{req.full_url} answered {code}, a redirect to {newurl}: the client does not "
            "follow redirects (the API key would go along); give the server's own address",
            code,
        )


_OPENER = urllib.request.build_opener(_RefuseRedirects)


class Client:
    """Talks to one `semsearch serve` at `url`; safe to share between threads."""

    def __init__(self, url: str, api_key: str | None = None, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._api_key = api_key

    def __repr__(self) -> str:  # never shows the key
        return f"Client({self.url!r}, api_key={'***' if self._api_key else None})"

    # -- API -----------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        """{"status": "ok", "index": NAME, "count": N, ...}"""
        return self._call("GET", "/health")

    def query(
        self,
        question: str,
        k: int = 5,
        threshold: float | str | None = None,
        mode: str | None = None,
        where: str | Sequence[str] | None = None,
    ) -> SearchResult:
        """Every hit for one question, and whether it was answered; `mode` is hybrid,
        dense or lexical (default: the server's); `where` answers only from the entries
        whose metadata fit it (semsearch.filters; a list: every expression must hold)."""
        body = self._search_body({"query": question}, k, threshold, mode, where)
        data = self._call("POST", "/search", body)
        return SearchResult.from_json({**data, "question": question})

    def search(
        self,
        question: str,
        k: int = 5,
        threshold: float | str | None = None,
        mode: str | None = None,
        where: str | Sequence[str] | None = None,
    ) -> list[Hit]:
        """Hits at or above the threshold, best first; empty means "no confident answer"."""
        return self.query(question, k, threshold, mode, where).confident

    def query_batch(
        self,
        questions: Sequence[str],
        k: int = 5,
        threshold: float | str | None = None,
        mode: str | None = None,
        where: str | Sequence[str] | None = None,
    ) -> list[SearchResult]:
        """One SearchResult per question, in order, from one request."""
        questions = _as_list(questions, "questions")
        if not questions:
            return []
        body = self._search_body({"queries": questions}, k, threshold, mode, where)
        return batch_from_json(self._call("POST", "/search", body), questions)

    def search_batch(
        self,
        questions: Sequence[str],
        k: int = 5,
        threshold: float | str | None = None,
        mode: str | None = None,
        where: str | Sequence[str] | None = None,
    ) -> list[list[Hit]]:
        """`search` for several questions in one request."""
        results = self.query_batch(questions, k, threshold, mode, where)
        return [result.confident for result in results]

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalised sentence vectors from the index's encoder, float32 [n, dim]."""
        import numpy as np  # only here: reading results needs no numpy

        texts = _as_list(texts, "texts")
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        data = self._call("POST", "/embed", {"texts": texts})
        return np.asarray(data["embeddings"], dtype=np.float32).reshape(
            len(texts), int(data["dim"])
        )

    # -- transport -----------------------------------------------------------------
    @staticmethod
    def _search_body(
        body: dict[str, Any],
        k: int,
        threshold: float | str | None,
        mode: str | None,
        where: str | Sequence[str] | None,
    ) -> dict[str, Any]:
        body["k"] = k
        if threshold is not None:
            body["threshold"] = threshold
        if mode is not None:
            body["mode"] = mode
        if where is not None:
            body["where"] = where if isinstance(where, str) else list(where)
        return body

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        request = urllib.request.Request(self.url + path, data=data, headers=headers, method=method)
        try:
            with _OPENER.open(request, timeout=self.timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise _from_http_error(exc, self.url + path) from None
        except (TimeoutError, urllib.error.URLError, ConnectionError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ServiceUnavailableError(
                f"cannot reach semsearch at {self.url}: {reason}"
            ) from None


def _as_list(values: Sequence[str], name: str) -> list[str]:
    if isinstance(values, str):
        raise TypeError(f"{name} must be a list of strings, not one string: wrap it in a list")
    return list(values)


def _from_http_error(exc: urllib.error.HTTPError, where: str) -> ServiceError:
    raw = exc.read()
    try:
        body = json.loads(raw)
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    detail = body.get("detail")
    message = detail if isinstance(detail, str) else f"HTTP {exc.code} from {where}"
    cls = _BY_STATUS.get(exc.code) or (ServerError if exc.code >= 500 else ServiceError)
    return cls(message, exc.code, body)
