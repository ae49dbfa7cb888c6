"""The exported transformer computes its last layer for the [CLS] position only.

A BERT sequence classifier reads one vector: the last layer's output at position 0 (the pooler
takes `hidden[:, 0]`). Every other position of the last layer is computed and thrown away, about
a seventh of the work of a 6-layer model at 64 tokens. The module below runs the first layers as
the model does, then the last layer with queries, attention output and feed-forward for position
0 alone (keys and values still cover every position). The arithmetic per row is the model's own,
so the logits agree with the eager model to float rounding; the export's parity checks compare
them against the unmodified model on every batch size and sequence length.
"""

from __future__ import annotations

from typing import Any

# BertForSequenceClassification and its look-alikes (same module layout, e.g. MiniLM checkpoints).
_LAYOUT = (
    "bert.embeddings",
    "bert.encoder.layer",
    "bert.pooler",
    "classifier",
)
_LAYER = (
    "attention.self.query",
    "attention.self.key",
    "attention.self.value",
    "attention.output",
    "intermediate",
    "output",
)


def _has(obj: Any, dotted: str) -> bool:
    for part in dotted.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return False
    return True


def supports_cls_only(model: Any) -> bool:
    """True for a BERT-layout encoder classifier (not a decoder, pooler present)."""
    config = getattr(model, "config", None)
    if config is None or getattr(config, "is_decoder", False):
        return False
    if not all(_has(model, path) for path in _LAYOUT):
        return False
    layers = model.bert.encoder.layer
    return len(layers) > 0 and all(_has(layers[-1], path) for path in _LAYER)


def cls_only_module(model: Any) -> Any:
    """`(input_ids, attention_mask) -> logits` with the last layer run for position 0 only."""
    import torch
    from torch.nn.functional import scaled_dot_product_attention
    from transformers.masking_utils import create_bidirectional_mask

    class ClsOnlyLogits(torch.nn.Module):
        """The model's forward pass, pruned to what the classifier reads."""

        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            bert = self.inner.bert
            hidden = bert.embeddings(input_ids=input_ids)
            mask = create_bidirectional_mask(
                config=bert.config, inputs_embeds=hidden, attention_mask=attention_mask
            )
            *first, last = bert.encoder.layer
            for layer in first:
                hidden = layer(hidden, mask)
            cls = _last_layer_at_cls(last, hidden, mask, scaled_dot_product_attention)
            return self.inner.classifier(bert.pooler(cls))

    return ClsOnlyLogits(model).eval()


def _last_layer_at_cls(layer: Any, hidden: Any, mask: Any, attend: Any) -> Any:
    """BertLayer.forward for query position 0: `[batch, 1, hidden]`."""
    attention = layer.attention.self
    batch, length, _ = hidden.shape
    size = attention.attention_head_size

    def split(x: Any, n: Any) -> Any:  # [batch, n, hidden] -> [batch, heads, n, head_size]
        return x.view(batch, n, -1, size).transpose(1, 2)

    cls_in = hidden[:, :1]
    query = split(attention.query(cls_in), 1)
    key, value = split(attention.key(hidden), length), split(attention.value(hidden), length)
    # The 4-D mask is [batch, 1, query, key] (or None when nothing is masked): keep query 0.
    context = attend(
        query,
        key,
        value,
        attn_mask=None if mask is None else mask[:, :, :1, :],
        scale=attention.scaling,
    )
    context = context.transpose(1, 2).reshape(batch, 1, -1)
    attended = layer.attention.output(context, cls_in)
    return layer.output(layer.intermediate(attended), attended)
