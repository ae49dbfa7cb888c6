"""The LightningModule: a Hugging Face sequence classifier, AdamW with linear warm-up and decay."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any, cast

import lightning as L
import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from pipeline.text_model.data import EncodedDataset, PadCollator

NO_DECAY = ("bias", "LayerNorm.weight", "layer_norm.weight")


def balanced_class_weights(labels: np.ndarray, n_classes: int) -> torch.Tensor:
    """Inverse class frequency, scaled so a balanced data set gets weight 1 everywhere."""
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    weights = len(labels) / (n_classes * np.maximum(counts, 1.0))
    return torch.tensor(weights, dtype=torch.float32)


class TextClassifier(L.LightningModule):
    """Fine-tunes `model` (an AutoModelForSequenceClassification) with a weighted cross-entropy."""

    def __init__(
        self,
        model: nn.Module,
        lr: float,
        weight_decay: float,
        warmup_ratio: float,
        class_weights: torch.Tensor | None = None,
        compile: bool = False,
    ) -> None:
        super().__init__()
        self.model = model
        self.lr = lr
        self.weight_decay = weight_decay
        self.warmup_ratio = warmup_ratio
        self.compile_model = compile
        self.register_buffer("class_weights", class_weights, persistent=False)
        self.samples_seen = 0  # per rank; the DDP test checks every rank trained

    def configure_model(self) -> None:
        if self.compile_model:
            # nn.Module.compile compiles in place: state_dict keys (checkpoints, save_pretrained)
            # stay those of the plain model. dynamic=True because batches are padded per batch.
            self.model.compile(dynamic=True)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.model(input_ids=input_ids, attention_mask=attention_mask).logits
        return logits

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        logits = self(batch["input_ids"], batch["attention_mask"])
        weights = cast(torch.Tensor | None, self.class_weights)
        loss = nn.functional.cross_entropy(logits.float(), batch["labels"], weights)
        self.samples_seen += len(batch["labels"])
        self.log("train_loss", loss, prog_bar=True, batch_size=len(batch["labels"]))
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        logits = self(batch["input_ids"], batch["attention_mask"]).float()
        # Unweighted: val_loss is the log loss the evaluation reports, so "best" means the same.
        loss = nn.functional.cross_entropy(logits, batch["labels"])
        accuracy = (logits.argmax(dim=-1) == batch["labels"]).float().mean()
        size = len(batch["labels"])
        self.log("val_loss", loss, prog_bar=True, sync_dist=True, batch_size=size)
        self.log("val_accuracy", accuracy, sync_dist=True, batch_size=size)

    def configure_optimizers(self) -> Any:
        from transformers import get_linear_schedule_with_warmup

        named = list(self.model.named_parameters())
        groups = [
            {
                "params": [p for n, p in named if not n.endswith(NO_DECAY)],
                "weight_decay": self.weight_decay,
            },
            {"params": [p for n, p in named if n.endswith(NO_DECAY)], "weight_decay": 0.0},
        ]
        optimizer = torch.optim.AdamW(groups, lr=self.lr)
        total = max(int(self.trainer.estimated_stepping_batches), 1)
        scheduler = get_linear_schedule_with_warmup(
            optimizer, int(self.warmup_ratio * total), total
        )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }


@torch.no_grad()
def predict_proba(
    model: nn.Module, input_ids: Sequence[list[int]], pad_id: int, batch_size: int
) -> np.ndarray:
    """Class probabilities (float64, input order) from a plain loop, batches sorted by length."""
    if not input_ids:
        raise ValueError("predict_proba needs at least one text")
    model.eval()
    device = next(model.parameters()).device
    order = np.argsort([len(ids) for ids in input_ids], kind="stable")
    dataset = EncodedDataset([input_ids[i] for i in order], np.zeros(len(order), dtype=np.int64))
    loader = DataLoader(dataset, batch_size=batch_size, collate_fn=PadCollator(pad_id))
    chunks = []
    for batch in loader:
        logits = model(
            input_ids=batch["input_ids"].to(device),
            attention_mask=batch["attention_mask"].to(device),
        ).logits
        # Softmax in float64 so every row sums to 1 within float64 precision (metrics check it).
        chunks.append(torch.softmax(logits.double(), dim=-1).cpu().numpy())
    proba = np.empty((len(order), chunks[0].shape[1]), dtype=np.float64)
    proba[order] = np.concatenate(chunks)
    return proba


def weights_digest(model: nn.Module) -> str:
    """SHA-256 over the state dict in key order: equal on every rank after DDP training."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()
