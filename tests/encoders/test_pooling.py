"""Every pooling strategy and layer combination against a NumPy computation over the
hidden states of a tiny random BERT, on a batch whose texts have different lengths."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoModel, AutoTokenizer

from semsearch.encoders import load_encoder
from semsearch.errors import ConfigError

TEXTS = [
    "A short one.",
    "A much longer sentence, with several more word-pieces than the first one has.",
    "",
    "Mid-length text about banks.",
]


def hidden_states(folder, texts):
    """Hidden states of the padded batch, the attention mask and the special-token mask."""
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder).eval()
    batch = tokenizer(texts, padding=True, return_tensors="pt", return_special_tokens_mask=True)
    special = batch.pop("special_tokens_mask").numpy()
    with torch.no_grad():
        output = model(**batch, output_hidden_states=True)
    states = [h.numpy().astype(np.float64) for h in output.hidden_states]
    return states, batch["attention_mask"].numpy(), special, output.pooler_output.numpy()


def reference(states, mask, special, pooler, pooling, layers, combine, skip_special):
    chosen = [states[layer] for layer in layers]
    if len(chosen) == 1:
        tokens = chosen[0]
    elif combine == "concat":
        tokens = np.concatenate(chosen, axis=-1)
    elif combine == "sum":
        tokens = np.sum(chosen, axis=0)
    else:
        tokens = np.mean(chosen, axis=0)
    rows = []
    for i in range(tokens.shape[0]):
        real = [t for t in range(tokens.shape[1]) if mask[i, t] == 1]
        words = [t for t in real if not (skip_special and special[i, t])] or real
        if pooling == "cls":
            rows.append(tokens[i, 0])
        elif pooling == "pooler":
            rows.append(pooler[i])
        elif pooling == "last":
            rows.append(tokens[i, real[-1]])
        else:
            mean = np.mean([tokens[i, t] for t in words], axis=0)
            peak = np.max([tokens[i, t] for t in words], axis=0)
            rows.append(
                {"mean": mean, "max": peak, "mean_max": np.concatenate([mean, peak])}[pooling]
            )
    return np.stack(rows)


CASES = [
    ("cls", (-1,), "concat", False),
    ("pooler", (-1,), "concat", False),
    ("mean", (-1,), "concat", False),
    ("max", (-1,), "concat", False),
    ("mean_max", (-1,), "concat", False),
    ("last", (-1,), "concat", False),
    ("mean", (-2,), "concat", False),
    ("mean", (0,), "concat", False),
    ("mean", (-3, -2, -1), "concat", False),
    ("mean", (-3, -2, -1), "sum", False),
    ("max", (1, 2), "mean", False),
    ("mean", (-1,), "concat", True),
    ("max", (-1,), "concat", True),
    ("cls", (-2, -1), "concat", False),
]


@pytest.mark.parametrize(("pooling", "layers", "combine", "skip_special"), CASES)
def test_pooling_matches_numpy(tiny_bert, pooling, layers, combine, skip_special):
    states, mask, special, pooler = hidden_states(tiny_bert, TEXTS)
    expected = reference(states, mask, special, pooler, pooling, layers, combine, skip_special)
    encoder = load_encoder(
        kind="bert",
        model=str(tiny_bert),
        pooling=pooling,
        layers=layers,
        layer_combine=combine,
        skip_special_tokens=skip_special,
        normalize=False,
    )
    got = encoder.encode(TEXTS, batch_size=len(TEXTS))
    assert got.shape == expected.shape == (len(TEXTS), encoder.dim)
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=1e-5)


def test_dimensions_follow_layers_and_pooling(tiny_bert):
    assert load_encoder(kind="bert", model=str(tiny_bert)).dim == 32
    concat4 = load_encoder(
        kind="bert", model=str(tiny_bert), layers="-3,-2,-1", layer_combine="concat"
    )
    assert concat4.dim == 96
    assert load_encoder(kind="bert", model=str(tiny_bert), pooling="mean_max").dim == 64
    assert (
        load_encoder(kind="bert", model=str(tiny_bert), layers="-2,-1", layer_combine="sum").dim
        == 32
    )


def test_layer_out_of_range_names_the_layer_count(tiny_bert):
    with pytest.raises(ConfigError, match=r"layer 3 is out of range: the model has 2 layers"):
        load_encoder(kind="bert", model=str(tiny_bert), layers=3)
    with pytest.raises(ConfigError, match=r"layer -4 is out of range"):
        load_encoder(kind="bert", model=str(tiny_bert), layers="-4")


def test_unknown_pooling_lists_the_valid_ones():
    with pytest.raises(
        ConfigError,
        match=r"unknown pooling 'avg': choose one of cls, pooler, mean, max, mean_max, last",
    ):
        load_encoder(kind="bert", pooling="avg")


def test_pooler_without_weights_is_a_clear_error(tiny_bert, tmp_path):
    from transformers import BertConfig, BertModel

    config = BertConfig.from_pretrained(tiny_bert)
    BertModel(config, add_pooling_layer=False).save_pretrained(tmp_path)
    AutoTokenizer.from_pretrained(tiny_bert).save_pretrained(tmp_path)
    with pytest.raises(ConfigError, match=r"no pooler weights"):
        load_encoder(kind="bert", model=str(tmp_path), pooling="pooler")
    assert load_encoder(kind="bert", model=str(tmp_path), pooling="cls").encode(["x"]).shape == (
        1,
        32,
    )
