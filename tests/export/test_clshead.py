"""The [CLS]-only last layer gives the model's logits and really skips the other positions."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pytest

from pipeline.export.clshead import cls_only_module, supports_cls_only
from pipeline.export.text import export_module


def _bert(attn_implementation: str, is_decoder: bool = False) -> Any:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=200,
        hidden_size=32,
        num_hidden_layers=3,
        num_attention_heads=4,
        intermediate_size=64,
        num_labels=3,
        is_decoder=is_decoder,
        attn_implementation=attn_implementation,
    )
    return BertForSequenceClassification(config).eval()


def _batch(length: int) -> tuple[Any, Any]:
    import torch

    rng = np.random.default_rng(length)
    ids = rng.integers(5, 200, size=(4, length))
    mask = np.ones_like(ids)
    mask[1, max(1, length // 2) :] = 0  # right padding, as the exported tokenizer pads
    mask[3, 1:] = 0  # only [CLS] left
    ids[mask == 0] = 0
    return torch.from_numpy(ids), torch.from_numpy(mask)


@pytest.mark.parametrize("attn_implementation", ["sdpa", "eager"])
@pytest.mark.parametrize("length", [1, 6, 33])
def test_cls_only_logits_equal_the_model_logits(attn_implementation: str, length: int):
    import torch

    model = _bert(attn_implementation)
    assert supports_cls_only(model)
    ids, mask = _batch(length)
    with torch.no_grad():
        expected = model(input_ids=ids, attention_mask=mask).logits
        got = cls_only_module(model)(ids, mask)
    assert got.shape == expected.shape == (4, 3)
    assert float((got - expected).abs().max()) < 1e-5


def test_last_layer_feed_forward_runs_on_one_position():
    import torch

    model = _bert("sdpa")
    seen: list[tuple[int, ...]] = []
    hooks = [
        layer.intermediate.register_forward_hook(lambda _m, args, _o: seen.append(args[0].shape))
        for layer in model.bert.encoder.layer
    ]
    with torch.no_grad():
        cls_only_module(model)(*_batch(20))
    for hook in hooks:
        hook.remove()
    assert [s[1] for s in seen] == [20, 20, 1]  # every layer but the last sees all 20 positions


def test_other_layouts_export_every_position():
    model = _bert("sdpa", is_decoder=True)
    assert not supports_cls_only(model)
    assert not supports_cls_only(object())
    assert type(export_module(model, cls_only=True)).__name__ == "LogitsOnly"
    assert type(export_module(_bert("sdpa"), cls_only=False)).__name__ == "LogitsOnly"
    assert type(export_module(_bert("sdpa"), cls_only=True)).__name__ == "ClsOnlyLogits"
