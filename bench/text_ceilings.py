"""What this machine allows the transformer's speed-ups to be, measured beside the speed-ups.

Two ceilings, both from the model's shape and the machine's own matrix-multiply rate:

- `runtime_ceiling`: the largest batch-1 speed-up over eager PyTorch that an fp32 runtime
  could show. Its matrix multiplies alone (the export's graph: last layer for [CLS] only) take
  at least their FLOPs over the best fp32 GEMM rate the core reaches (`torch.mm`; the FMA
  units' own peak is 15-20 % higher, see docs/export.md), however little else it does.
- `batching_ceiling`: the largest throughput gain dynamic batching can give over batch-1 serving
  when both use all cores, as `serving` does: batch-1 calls at their measured all-core latency,
  against batches of 16 whose per-text cost is the one-thread cost spread over every core with
  no loss. Where a batch-1 call already runs near the core's peak, batching has little to win.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.export.verify import timed

BATCH = 16
CEILING_LENGTHS = (16, 26, 50, 64)  # 26: the demo texts' median; 50: the HTTP benchmark's record


def _best_s(fn: Callable[[], Any], runs: int) -> float:
    fn()
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def peak_gflops(threads: int) -> float:
    """fp32 matrix-multiply rate of `threads` cores: torch.mm (MKL) on 1024 x 1024, best of 10."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        a, b = torch.rand(1024, 1024), torch.rand(1024, 1024)
        return 2 * 1024**3 / _best_s(lambda: torch.mm(a, b), 10) / 1e9
    finally:
        torch.set_num_threads(previous)


def matmul_gflop(config: Any, length: int, cls_only: bool = True) -> float:
    """FLOPs of a BERT-style encoder's matrix multiplies for one text of `length` tokens."""
    h, f = config.hidden_size, config.intermediate_size
    per_token = 2 * (4 * h * h + 2 * h * f)  # Q, K, V, output, and the two feed-forward layers
    attention = 2 * 2 * length * length * h  # scores and weighted values, all heads together
    layer = length * per_token + attention
    total = config.num_hidden_layers * layer
    if cls_only:  # the last layer needs K and V for every token, the rest for [CLS] only
        total += 2 * 2 * length * h * h + per_token - 2 * 2 * h * h + 2 * 2 * length * h - layer
    return (total + 2 * h * h) / 1e9  # + the pooler; the classifier itself is negligible


def runtime_ceiling(config: Any, torch_ms: dict[int, float], threads: int) -> dict[str, Any]:
    """Per length: the matmul floor (ms) and torch's time over it (the speed-up ceiling)."""
    peak = peak_gflops(threads)
    out: dict[str, Any] = {"peak_gflops": round(peak, 1), "threads": threads}
    for n, ms in torch_ms.items():
        floor_ms = 1e3 * matmul_gflop(config, n) / peak
        out[f"len{n}"] = {
            "matmul_gflop": round(matmul_gflop(config, n), 3),
            "floor_ms": round(floor_ms, 2),
            "torch_ms": round(ms, 2),
            "speedup_ceiling": round(ms / floor_ms, 2),
        }
    return out


def batching_ceiling(model_path: Path, vocab_size: int) -> dict[str, Any]:
    """Per length: batch-1 all-core latency, batch-16 one-thread cost per text, and the ceiling."""
    from serving.runtime import cpu_session, session_options

    cores = os.cpu_count() or 1
    all_cores, one = (cpu_session(str(model_path), session_options(t)) for t in (cores, 1))
    rng = np.random.default_rng(0)
    out: dict[str, Any] = {"cores": cores, "batch": BATCH}
    for n in CEILING_LENGTHS:
        feeds = []
        for rows in (1, BATCH):
            ids = rng.integers(1000, vocab_size, size=(rows, n), dtype=np.int64)
            feeds.append({"input_ids": ids, "attention_mask": np.ones_like(ids)})
        batch1_ms = 1e3 * timed(lambda f=feeds[0]: all_cores.run(["logits"], f), 60)
        per_text_ms = 1e3 * timed(lambda f=feeds[1]: one.run(["logits"], f), 10) / BATCH
        out[f"len{n}"] = {
            "batch1_all_cores_ms": round(batch1_ms, 2),
            "batch16_one_core_ms_per_text": round(per_text_ms, 2),
            "throughput_ceiling": round(cores * batch1_ms / per_text_ms, 2),
        }
    return out
