"""From BERT's hidden states to one vector per text: which layers, then which tokens.

Every function is mask-aware: padding never enters a mean or a max, so a text's
vector does not depend on the batch it was padded in.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from semsearch.config import LAYER_COMBINES, POOLING_MODES
from semsearch.errors import ConfigError


def check_layers(layers: Sequence[int], num_layers: int) -> None:
    """`num_layers` transformer layers give num_layers + 1 hidden states (0 = embeddings)."""
    for layer in layers:
        if not -(num_layers + 1) <= layer <= num_layers:
            raise ConfigError(
                f"layer {layer} is out of range: the model has {num_layers} layers, so "
                f"choose 0..{num_layers} (0 is the embedding output) or "
                f"-1..-{num_layers + 1} counting from the last"
            )


def combine_layers(
    hidden_states: Sequence[torch.Tensor], layers: Sequence[int], combine: str
) -> torch.Tensor:
    """Select `layers` from hidden_states ([batch, tokens, dim] each) and join them."""
    check_layers(layers, len(hidden_states) - 1)
    chosen = [hidden_states[layer] for layer in layers]
    if len(chosen) == 1:
        return chosen[0]
    if combine == "concat":
        return torch.cat(chosen, dim=-1)
    if combine == "sum":
        return torch.stack(chosen).sum(dim=0)
    if combine == "mean":
        return torch.stack(chosen).mean(dim=0)
    raise ConfigError(
        f"unknown layer combination {combine!r}: choose one of {', '.join(LAYER_COMBINES)}",
        setting="layer_combine",
    )


def pooling_mask(
    attention_mask: torch.Tensor, special_tokens_mask: torch.Tensor | None
) -> torch.Tensor:
    """Tokens that mean/max pooling read: real tokens, minus [CLS]/[SEP] when asked.

    A text with no word-pieces at all (the empty string) keeps its special tokens, so
    it still gets a vector instead of a division by zero.
    """
    mask = attention_mask.bool()
    if special_tokens_mask is None:
        return mask
    words = mask & ~special_tokens_mask.bool()
    empty = ~words.any(dim=1, keepdim=True)
    return words | (empty & mask)  # not torch.where: ONNX Runtime has no boolean Where


def pool(
    token_vectors: torch.Tensor,
    attention_mask: torch.Tensor,
    mode: str,
    *,
    special_tokens_mask: torch.Tensor | None = None,
    pooler_output: torch.Tensor | None = None,
) -> torch.Tensor:
    """Reduce [batch, tokens, dim] to [batch, dim'] with one of POOLING_MODES (right padding)."""
    if mode == "cls":
        return token_vectors[:, 0]
    if mode == "pooler":
        if pooler_output is None:
            raise ConfigError(
                "this checkpoint has no pooler weights, so pooling 'pooler' is not available: "
                "use cls, mean, max, mean_max or last"
            )
        return pooler_output
    if mode == "last":
        last = attention_mask.long().sum(dim=1) - 1
        return token_vectors[torch.arange(token_vectors.shape[0]), last]
    if mode not in ("mean", "max", "mean_max"):
        raise ConfigError(
            f"unknown pooling {mode!r}: choose one of {', '.join(POOLING_MODES)}", setting="pooling"
        )
    mask = pooling_mask(attention_mask, special_tokens_mask).unsqueeze(-1)
    pooled = []
    if mode in ("mean", "mean_max"):
        summed = (token_vectors * mask).sum(dim=1)
        pooled.append(summed / mask.sum(dim=1).clamp(min=1))
    if mode in ("max", "mean_max"):
        lowest = torch.finfo(token_vectors.dtype).min
        pooled.append(token_vectors.masked_fill(~mask, lowest).max(dim=1).values)
    return torch.cat(pooled, dim=-1)
