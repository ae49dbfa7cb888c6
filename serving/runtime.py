"""ONNX Runtime sessions for exported models: prepared columns in, graph outputs out (the API,
batch scoring and the pipeline's parity checks alike); files are checked against their SHA-256."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from serving.schemas import ModelEntry
from serving.text_input import build_texts

# ONNX Runtime's fused SkipLayerNormalization is slower on CPU than the Add and LayerNormalization
# it replaces (without it the transformer's batch-1 latency drops by 8%; outputs move by 3e-8).
DISABLED_OPTIMIZERS = ("SkipLayerNormFusion",)
# Fixed cost of one ONNX Runtime call, in tokens of one text, for `length_groups`: measured on
# the exported MiniLM-shaped model on 2 CPU cores (a 4-token text took as long as ~12 tokens).
CALL_COST_TOKENS = 12


class ModelFileError(Exception):
    """A model file is missing, changed since export, outside its directory or unloadable."""


def verified_bytes(directory: Path, relative: str, sha256: str, what: str) -> bytes:
    """A file's bytes, checked to lie inside `directory` and to match `sha256`."""
    root = directory.resolve()
    path = (root / relative).resolve()
    if not path.is_relative_to(root):
        raise ModelFileError(f"{what}: path {relative!r} leaves {root}; fix: re-run the export")
    if not path.is_file():
        raise ModelFileError(f"{path} ({what}) not found; fix: re-run the export stage")
    data = path.read_bytes()
    found = hashlib.sha256(data).hexdigest()
    if found != sha256.lower():
        raise ModelFileError(
            f"{path}: SHA-256 {found} does not match the contract's {sha256} ({what}); the file "
            "changed after export — fix: re-run the export stage"
        )
    return data


def cpu_session(model: bytes | str, threads: int = 1) -> ort.InferenceSession:
    """A CPU session for a model file or its bytes, optimised as the server runs every graph:
    a fixed thread count and no spinning, as the cores are shared with the event loop."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads  # else ORT's defaults: sequential, all optimisations
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3  # errors only: ORT's initialiser notes are not actionable
    return ort.InferenceSession(
        model,
        options,
        providers=["CPUExecutionProvider"],
        disabled_optimizers=list(DISABLED_OPTIMIZERS),
    )


class LoadedModel:
    """One exported model, ready to run on prepared columns."""

    def __init__(
        self, entry: ModelEntry, session: ort.InferenceSession, tokenizer: Tokenizer | None
    ) -> None:
        self.entry = entry
        self.name = entry.name
        self.session = session
        self.tokenizer = tokenizer
        self.outputs = entry.outputs.model_dump(exclude_none=True)
        graph_inputs = {i.name for i in session.get_inputs()}
        text = entry.kind == "text"
        expected = {"input_ids", "attention_mask"} if text else {i.name for i in entry.inputs}
        if graph_inputs != expected:
            raise ModelFileError(
                f"{entry.file}: graph inputs {sorted(graph_inputs)} differ from the contract's "
                f"{sorted(expected)}; fix: re-run the export stage"
            )

    def feeds(self, columns: Mapping[str, np.ndarray]) -> list[dict[str, np.ndarray]]:
        """The graph inputs for prepared columns: one feed, or one per text length group."""
        if self.entry.kind == "tabular":
            return [{i.name: column_array(columns[i.column], i.dtype) for i in self.entry.inputs}]
        assert self.tokenizer is not None and self.entry.text_input and self.entry.tokenizer
        texts = build_texts(columns, self.entry.text_input)
        ids = [e.ids for e in self.tokenizer.encode_batch(texts)]
        pad_id, left = self.entry.tokenizer.pad_id, self.entry.tokenizer.pad_left
        out = []
        # Texts of similar length share a call, so short texts don't pay for a long one's padding.
        for group in length_groups([len(i) for i in ids]):
            input_ids, mask = pad([ids[k] for k in group], pad_id, left)
            out.append({"input_ids": input_ids, "attention_mask": mask, "__rows__": group})
        return out

    def run(self, columns: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Graph outputs by contract name (float64): probabilities [N, C] or value [N]."""
        n = len(next(iter(columns.values())))
        names = list(self.outputs.values())
        results: dict[str, np.ndarray] = {}
        for feed in self.feeds(columns):
            rows = feed.pop("__rows__", slice(None))
            for key, value in zip(self.outputs, self.session.run(names, feed), strict=True):
                value = np.asarray(value, dtype=np.float64)
                value = value.reshape(-1) if key == "value" else value
                if key not in results:
                    results[key] = np.empty((n, *value.shape[1:]))
                results[key][rows] = value
        return results


def load_model(directory: Path, entry: ModelEntry, threads: int = 1) -> LoadedModel:
    """Load one model described by its contract (or card) entry, checksums first."""
    data = verified_bytes(Path(directory), entry.file, entry.sha256, f"model {entry.name}")
    try:
        session = cpu_session(data, threads)
    except Exception as exc:  # ORT raises its own exception types for corrupt graphs
        raise ModelFileError(
            f"{entry.file}: ONNX Runtime cannot load it ({exc}); fix: re-run the export stage"
        ) from None
    tokenizer = None
    if entry.kind == "text":
        spec = entry.tokenizer
        if spec is None or entry.text_input is None:
            raise ModelFileError(f"model {entry.name}: a text model needs tokenizer and text_input")
        raw = verified_bytes(Path(directory), spec.file, spec.sha256, f"tokenizer of {entry.name}")
        tokenizer = Tokenizer.from_str(raw.decode("utf-8"))
        tokenizer.enable_truncation(max_length=spec.max_length)
        tokenizer.no_padding()  # `pad` pads each length group to its own longest text
    return LoadedModel(entry, session, tokenizer)


def column_array(values: np.ndarray | Sequence[Any], dtype: str) -> np.ndarray:
    """One [N, 1] graph input. Missing strings become "" (ONNX strings cannot be null)."""
    if dtype == "string":
        # One flat array then a reshape: a nested list per row cost 50x more (batch scoring).
        return np.array(["" if v is None else v for v in values], dtype=object).reshape(-1, 1)
    return np.asarray(values, dtype=dtype).reshape(-1, 1)  # float32, float64 or int64


def length_groups(
    lengths: Sequence[int], call_cost_tokens: int = CALL_COST_TOKENS
) -> list[np.ndarray]:
    """Positions of `lengths` grouped for separate calls, at the cheapest total cost.

    A group costs `call_cost_tokens` plus its size times its longest length (a CPU pays for
    padding as for tokens); exact dynamic programme over the distinct lengths.
    """
    lengths_arr = np.asarray(lengths, dtype=np.int64)
    order = np.argsort(lengths_arr, kind="stable")
    values, counts = np.unique(lengths_arr, return_counts=True)
    before = np.concatenate([[0], np.cumsum(counts)])  # texts shorter than values[i]
    best = np.zeros(len(values) + 1)  # best[j]: cheapest cost of the j shortest lengths
    start = np.zeros(len(values) + 1, dtype=np.int64)  # start[j]: where its last group starts
    for j in range(1, len(values) + 1):
        costs = best[:j] + call_cost_tokens + (before[j] - before[:j]) * values[j - 1]
        start[j] = np.argmin(costs)
        best[j] = costs[start[j]]
    groups, j = [], len(values)
    while j > 0:
        groups.append(np.sort(order[before[start[j]] : before[j]]))
        j = start[j]
    return groups[::-1]


def pad(
    sequences: Sequence[Sequence[int]], pad_id: int, left: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """(input_ids, attention_mask) as int64 [N, longest], padded on the tokenizer's side."""
    width = max((len(s) for s in sequences), default=0)
    ids = np.full((len(sequences), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(sequences), width), dtype=np.int64)
    for row, seq in enumerate(sequences):
        cols = slice(width - len(seq), width) if left else slice(0, len(seq))
        ids[row, cols] = seq
        mask[row, cols] = 1
    return ids, mask
