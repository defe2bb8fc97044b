"""Request and response bodies of the HTTP API, with the server's limits built in.

The limits come from `ServeConfig`, so the models are made per app by `request_models`.
(No `from __future__ import annotations` here: pydantic and FastAPI read these
annotations at runtime, some of them local to a function.)
"""

from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from semsearch.service.config import ServeConfig


def _threshold(value: Any) -> float | str | None:
    """A cosine in [-1, 1], "none" (no threshold) or null (the server's default)."""
    if value is None or value == "none":
        return value
    if isinstance(value, bool) or not isinstance(value, int | float) or not -1 <= value <= 1:
        raise ValueError('must be a cosine in [-1, 1] or "none"')
    return float(value)


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty or only whitespace")
    return value


# The response models document `SearchResult.to_json()` and `batch_to_json()`
# (semsearch.results) in /docs; the route returns those dicts itself. Extra fields are
# forbidden so that a test (tests/test_serve.py) catches any drift between the two.
_EXACT = ConfigDict(extra="forbid")


class ResultItem(BaseModel):
    """One known entry that answers the question; `score` ranked it."""

    model_config = _EXACT
    id: str
    score: float = Field(
        description="what ranked the hit: fused (hybrid), cosine (dense) or BM25 (lexical)"
    )
    text: str = Field(description="the known question (or text) that matched")
    answer: str
    metadata: dict[str, Any]
    rank: int
    scores: dict[str, float] | None = Field(
        default=None,
        description="each part's own score (hybrid, lexical): dense (the cosine the "
        "threshold judges), joint or question (the second view's cosine), lexical (BM25)",
    )


class SearchResponse(BaseModel):
    """One question: the hits that clear the threshold, best first; `answered` is false
    (and `results` empty) when none does."""

    model_config = _EXACT
    question: str
    answered: bool
    threshold: float | None = Field(description="the threshold in force (null: none)")
    mode: str | None = Field(description="what ranked the hits: hybrid, dense or lexical")
    best_score: float | None = Field(
        description="the best cosine before the threshold's filter (null: empty index)"
    )
    results: list[ResultItem]


class BatchSearchResponse(BaseModel):
    """Several questions, in request order."""

    model_config = _EXACT
    results: list[list[ResultItem]]
    answered: list[bool]
    threshold: float | None
    mode: str | None
    best_score: list[float | None]


class EmbedResponse(BaseModel):
    embeddings: list[list[float]]
    dim: int


class HealthResponse(BaseModel):
    status: str
    index: str
    count: int
    version: str


class ErrorResponse(BaseModel):
    """Every error: `detail` is one line a person can act on; `errors` names fields."""

    detail: str
    errors: list[dict[str, Any]] | None = None


def request_models(config: ServeConfig, default_k: int) -> tuple[type[BaseModel], type[BaseModel]]:
    """The /search and /embed request bodies under this server's limits."""
    question = Annotated[
        str,
        StringConstraints(min_length=1, max_length=config.max_text_chars),
        AfterValidator(_not_blank),
    ]
    text = Annotated[str, StringConstraints(max_length=config.max_text_chars)]
    k_type = Annotated[
        int, Field(ge=1, le=config.max_k, description=f"hits per question, 1..{config.max_k}")
    ]
    strict = ConfigDict(strict=True, extra="forbid")

    class SearchRequest(BaseModel):
        """Give `query` (one question) or `queries` (a list), not both."""

        model_config = ConfigDict(
            strict=True,
            extra="forbid",
            json_schema_extra={"examples": [{"query": "how do I export a PDF?", "k": 3}]},
        )
        query: question | None = None
        queries: (
            Annotated[list[question], Field(min_length=1, max_length=config.max_texts)] | None
        ) = None
        k: k_type = default_k
        threshold: Annotated[Any, AfterValidator(_threshold)] = Field(
            default=None,
            json_schema_extra={
                "anyOf": [
                    {"type": "number", "minimum": -1, "maximum": 1},
                    {"const": "none"},
                    {"type": "null"},
                ]
            },
            description='minimum cosine for an answer, or "none" for no threshold '
            "(absent or null: the server's default, else the index's own)",
        )
        mode: Literal["hybrid", "dense", "lexical"] | None = Field(
            default=None, description="how hits are ranked (server default if absent)"
        )

        @model_validator(mode="after")
        def _one_of(self) -> "SearchRequest":
            if (self.query is None) == (self.queries is None):
                raise ValueError(
                    "give either 'query' (one question) or 'queries' (a list of questions)"
                )
            return self

    class EmbedRequest(BaseModel):
        model_config = strict
        texts: Annotated[list[text], Field(min_length=1, max_length=config.max_texts)]

    return SearchRequest, EmbedRequest
