"""Typed configuration of the export stage (`configs/export/`)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ExportConfig:
    """What to export, how strictly parity is checked and how the champion is chosen."""

    models: list[str] = field(default_factory=lambda: ["baseline", "lightgbm", "text_model"])
    opset: int = 18  # default ONNX domain for the scikit-learn graphs
    ml_opset: int = 3  # ai.onnx.ml domain (tree ensembles, encoders)
    text_opset: int = 20  # torch.onnx dynamo exporter
    proba_tolerance: float = 1e-5  # max |Δ probability|, scikit-learn and LightGBM
    logits_tolerance: float = 1e-4  # max |Δ logit|, transformer
    reference_tolerance: float = 1e-4  # ONNX vs the training stage's predictions_test.parquet
    batch_sizes: list[int] = field(default_factory=lambda: [1, 7, 64])
    # Token lengths the transformer is checked at (the model's max_length is always added): the
    # graph has a dynamic sequence axis, so parity must hold at lengths other than the traced one.
    sequence_lengths: list[int] = field(default_factory=lambda: [1, 8, 32])
    max_test_rows: int | None = None  # null: the whole test split
    long_text_chars: int = 20_000  # edge row: a text far beyond the token limit
    category_max_length: int = 200  # characters, for the contract's category fields
    text_max_length: int = 5000  # characters, for the contract's text field
    champion_metric: str = "roc_auc"  # validation metric that picks the champion
    quantize: bool = True  # also write an int8 (dynamic) transformer and its report vs fp32
    optimize: str = "none"  # ORT offline graph optimisation: none | basic | extended
    # Compute the transformer's last layer for the [CLS] position only, the one vector the
    # classifier reads (BERT layouts; others export unchanged). Same logits, ~1/7 less work.
    cls_only: bool = True
    registered_name: str = "{name}-onnx"  # MLflow registered model for each ONNX file
    seed: int = 0  # edge-row sampling
    text_locale: str = "C.UTF-8"  # StringNormalizer locale in TF-IDF graphs (must exist at serving)
    trusted_types: list[str] = field(default_factory=list)  # extra types allowed in .skops files
