"""Request and response bodies of the HTTP API, with the server's limits built in.

The limits come from `ServeConfig`, so the models are made per app by `request_models`.
(No `from __future__ import annotations` here: pydantic and FastAPI read these
annotations at runtime, some of them local to a function.)
"""

from collections.abc import Callable
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from semsearch.errors import ConfigError
from semsearch.params import MODES, parse_k, parse_mode, parse_threshold
from semsearch.service.config import ServeConfig


def _checked(parse: Callable[..., Any], **options: Any) -> Callable[[Any], Any]:
    """A semsearch.params parser as a pydantic validator: its message, as pydantic's."""

    def check(value: Any) -> Any:
        try:
            return parse(value, **options)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None

    return check


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty or only whitespace")
    return value


# The response models document `SearchResult.to_json()` and `batch_to_json()`
# (semsearch.search.results) in /docs; the route returns those dicts itself. Extra fields are
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
        description="the top-ranked hit's cosine, which `answered` judges (null: no hit)"
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
        int,
        AfterValidator(_checked(parse_k, most=config.max_k)),
        Field(description=f"hits per question, 1..{config.max_k}"),
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
        threshold: Annotated[Any, AfterValidator(_checked(parse_threshold))] = Field(
            default=None,
            json_schema_extra={
                "anyOf": [
                    {"type": "number", "minimum": -1, "maximum": 1},
                    {"enum": ["none", "index"]},
                    {"type": "null"},
                ]
            },
            description='minimum cosine of the top hit for an answer, "none" for no '
            "threshold or \"index\" for the index's own (absent or null: the server's "
            "default, else the index's own)",
        )
        mode: Annotated[str | None, AfterValidator(_checked(parse_mode))] = Field(
            default=None,
            json_schema_extra={"enum": list(MODES)},
            description="how hits are ranked: hybrid, dense or lexical (server default if absent)",
        )

        where: (
            Annotated[str, StringConstraints(max_length=config.max_text_chars)]
            | Annotated[
                list[Annotated[str, StringConstraints(max_length=config.max_text_chars)]],
                Field(max_length=config.max_texts),
            ]
            | None
        ) = Field(
            default=None,
            description="answer only from the entries whose metadata fit, e.g. "
            '"product = mobile and lang in (en, de)" (=, !=, <, <=, >, >=, in, and, or, '
            "not); a list: every expression must hold. A filter the index cannot run "
            "answers 422 naming the position or the field and the fields there are",
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
