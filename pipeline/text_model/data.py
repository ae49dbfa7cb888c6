"""Text data: read the processed splits, build the input strings, tokenize, pad per batch."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from pipeline.common.dataset import LABEL, Profile, split_path
from pipeline.common.errors import PipelineError
from serving.text_input import build_texts


@dataclass(frozen=True)
class SplitTexts:
    """One split as the text model sees it: ids, input strings and class indices."""

    ids: np.ndarray
    texts: list[str]
    labels: np.ndarray  # int64 class indices into profile.labels


def text_input_spec(profile: Profile, text_fields: Sequence[str]) -> dict[str, Any]:
    """The spec `serving.text_input` builds model inputs from (saved with the model)."""
    assert profile.text is not None
    fields = []
    for name in text_fields:
        if name in profile.numeric:
            fields.append({"name": name, "type": "number"})
        elif name in profile.categorical:
            fields.append({"name": name, "type": "category"})
        else:
            raise PipelineError(
                f"text_fields entry '{name}' is not a numeric or categorical input column",
                where="configs/text_model: text_fields",
                fix=f"choose from {[*profile.numeric, *profile.categorical]}",
            )
    return {"text": profile.text, "fields": fields}


def read_split(
    processed_dir: Path,
    split: str,
    profile: Profile,
    spec: dict[str, Any],
    subsample: int | None = None,
    seed: int = 0,
) -> SplitTexts:
    """Read one split's columns the text model needs; optionally a seeded random subsample."""
    import polars as pl

    columns = [profile.id, spec["text"], *(f["name"] for f in spec["fields"]), LABEL]
    path = split_path(split, processed_dir)
    if not path.is_file():
        raise PipelineError("split not found", where=str(path), fix="run the ETL: dvc repro etl")
    frame = pl.read_parquet(path, columns=list(dict.fromkeys(columns)))
    if subsample is not None and frame.height > subsample:
        frame = frame.sample(n=subsample, seed=seed, shuffle=True)
    texts = build_texts({name: frame[name].to_list() for name in frame.columns}, spec)
    return SplitTexts(
        ids=frame[profile.id].to_numpy(),
        texts=texts,
        labels=frame[LABEL].to_numpy().astype(np.int64),
    )


class EncodedDataset(Dataset[tuple[list[int], int]]):
    """Token ids (truncated, not padded) and labels, tokenized once up front."""

    def __init__(self, input_ids: list[list[int]], labels: np.ndarray) -> None:
        self.input_ids = input_ids
        self.labels = labels

    def __len__(self) -> int:
        return len(self.input_ids)

    def __getitem__(self, index: int) -> tuple[list[int], int]:
        return self.input_ids[index], int(self.labels[index])


def encode(tokenizer: Any, texts: Sequence[str], max_length: int) -> list[list[int]]:
    """Fast-tokenize a batch of texts into id lists, truncated to `max_length`."""
    encoded = tokenizer(list(texts), truncation=True, max_length=max_length, padding=False)
    return [list(ids) for ids in encoded["input_ids"]]


class PadCollator:
    """Pad each batch to its own longest sequence (dynamic padding), not to max_length."""

    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id

    def __call__(self, batch: Sequence[tuple[list[int], int]]) -> dict[str, torch.Tensor]:
        width = max(len(ids) for ids, _ in batch)
        input_ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, (ids, _) in enumerate(batch):
            input_ids[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
            attention_mask[row, : len(ids)] = 1
        labels = torch.tensor([label for _, label in batch], dtype=torch.long)
        return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


class TextDataModule(L.LightningDataModule):
    """Train/validation loaders over tokenized splits; DDP shards them via Lightning's sampler."""

    def __init__(
        self,
        train: SplitTexts,
        val: SplitTexts,
        tokenizer: Any,
        max_length: int,
        batch_size: int,
        eval_batch_size: int,
        num_workers: int = 0,
        pin_memory: bool = False,
        persistent_workers: bool = False,
    ) -> None:
        super().__init__()
        self.splits = {"train": train, "val": val}
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.loader_kwargs: dict[str, Any] = {
            "num_workers": num_workers,
            "pin_memory": pin_memory,
            "persistent_workers": persistent_workers and num_workers > 0,
            "collate_fn": PadCollator(tokenizer.pad_token_id),
        }
        self.datasets: dict[str, EncodedDataset] = {}

    def setup(self, stage: str) -> None:
        """Tokenize once per process (cheap with the fast tokenizer; no files written)."""
        for name, split in self.splits.items():
            if name not in self.datasets:
                ids = encode(self.tokenizer, split.texts, self.max_length)
                self.datasets[name] = EncodedDataset(ids, split.labels)

    def train_dataloader(self) -> DataLoader[Any]:
        return DataLoader(
            self.datasets["train"], batch_size=self.batch_size, shuffle=True, **self.loader_kwargs
        )

    def val_dataloader(self) -> DataLoader[Any]:
        return DataLoader(
            self.datasets["val"], batch_size=self.eval_batch_size, **self.loader_kwargs
        )
