"""Demo data: support tickets whose escalation, level or cost depends on interactions in the table
and on the mood their text tells. Deterministic for a seed, row count and part size."""

from __future__ import annotations

import logging
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from omegaconf import DictConfig

from pipeline.common.config import validate
from pipeline.common.errors import PipelineError
from pipeline.common.io import atomic_dir
from pipeline.generate.text import make_texts

log = logging.getLogger(__name__)

OUTPUT_DIR = Path("data/raw/demo")
CHANNELS = ["email", "phone", "chat", "web form", "social media"]
REGIONS = ["north", "south", "east", "west", "central", "north east", "south west", "islands"]
START = np.datetime64("2023-01-01T00:00:00", "us")
TASKS = ("binary", "multiclass", "regression")


@dataclass
class GenerateConfig:
    """Size and shape of the demo data (`configs/generate/`)."""

    rows: int = 50_000
    part_rows: int = 1_000_000  # rows per part file; 10M rows → 10 parts
    task: str = "binary"  # binary | multiclass | regression (label = a resolution cost)
    n_classes: int = 3  # used when task is multiclass
    positive_rate: float = 0.2  # share of the positive (binary) / highest (multiclass) class
    n_products: int = 5_000  # the high-cardinality categorical
    days: int = 730  # timestamps span this many days from 2023-01-01
    missing_rate: float = 0.05  # base rate of nulls in nullable columns (varies per column)
    impossible_rate: float = 0.005  # negative amounts, ages of -1 or 150+
    duplicate_rate: float = 0.01  # exact duplicate rows (double submissions)
    typo_rate: float = 0.03  # share of words and phrases written with a typo
    workers: int = 2  # processes generating parts in parallel

    def __post_init__(self) -> None:
        checks = {  # key: (valid, what it must be)
            "task": (self.task in TASKS, f"one of {', '.join(TASKS)}"),
            "rows": (self.rows >= 100, ">= 100"),
            "part_rows": (self.part_rows >= 100, ">= 100"),
            "n_classes": (self.task != "multiclass" or self.n_classes >= 3, ">= 3 for multiclass"),
        }
        for key, (valid, expected) in checks.items():
            if not valid:
                raise PipelineError(
                    f"{key} must be {expected}, found {getattr(self, key)!r}",
                    where=f"configs/generate: {key}",
                    fix=f"set generate.{key} so that it is {expected}",
                )


def _messy_category(
    values: list[str], index: np.ndarray, rng: np.random.Generator, messy: float, missing: float
) -> pa.Array:
    """Each value in five spellings that normalise back to it (case, padding, inner spaces)."""
    n = len(index)
    spelling = np.where(rng.random(n) < messy, rng.integers(1, 5, size=n), 0)
    variants = [(v, v.upper(), v.title(), f"  {v}", v.replace(" ", "  ") + " ") for v in values]
    return pa.array([s for five in variants for s in five]).take(
        pa.array(index * 5 + spelling, mask=rng.random(n) < missing)
    )


def _true_columns(cfg: GenerateConfig, rng: np.random.Generator, m: int) -> dict[str, Any]:
    """The clean tabular values the label is computed from (before any dirt is added)."""
    popularity = 1 / np.arange(1, cfg.n_products + 1) ** 0.8
    cols: dict[str, Any] = {
        "amount": np.round(rng.lognormal(4.0, 1.0, m), 2),
        "age": np.clip(rng.normal(40, 13, m), 18, 90).round(),
        "tenure": rng.exponential(400, m).astype(np.int64),
        "prior": rng.poisson(1.2, m).astype(np.int64),
        "channel": rng.choice(len(CHANNELS), m, p=[0.4, 0.25, 0.2, 0.1, 0.05]),
        "region": rng.integers(len(REGIONS), size=m),
        "product": rng.choice(cfg.n_products, m, p=popularity / popularity.sum()),
        "member": rng.random(m) < 0.35,
        "hour": rng.choice(24, m, p=np.r_[np.full(7, 0.01), np.full(17, 0.93 / 17)]),
    }
    seconds = rng.integers(cfg.days, size=m) * 86_400 + rng.integers(3_600, size=m)
    cols["created"] = START + (seconds + cols["hour"] * 3_600) * np.int64(1_000_000)
    return cols


def _tabular_score(cfg: GenerateConfig, seed: int, c: dict[str, Any]) -> np.ndarray:
    """Thresholds, an XOR and a per-product effect: what a tree finds and a linear model can't."""
    defect = np.random.default_rng([seed, 10**6]).normal(0, 1, cfg.n_products)  # same per part
    return (
        1.1 * ((c["amount"] > 150) & ~c["member"])
        + 0.9 * ((c["channel"] == 1) & (c["prior"] >= 2))
        + 0.8 * ((c["age"] < 30) ^ (c["tenure"] < 180))
        + 0.6 * defect[c["product"]]
        + 0.7 * (c["hour"] < 7)
        - 0.4 * c["member"]
    )


def _target(
    cfg: GenerateConfig, tabular: np.ndarray, mood: np.ndarray, rng: np.random.Generator
) -> pa.Array:
    """Classes from a noisy score of table and text; for regression a cost in currency units."""
    m = len(mood)
    if cfg.task == "regression":
        # Multiplicative effects and log-normal noise: positive, right-skewed (log1p suits it).
        log_cost = 3.2 + 0.55 * tabular + 0.5 * mood + rng.normal(0, 0.3, m)
        return pa.array(np.round(np.exp(log_cost), 2))
    # Class index by quantiles of the noisy score: the top `positive_rate` is the last class.
    score = 1.3 * tabular + 2.2 * mood + rng.logistic(0, 0.3, m)
    lower = cfg.n_classes - 1 if cfg.task == "multiclass" else 1  # classes below the top one
    rest = (1 - cfg.positive_rate) / lower
    cuts = np.quantile(score, [rest * (k + 1) for k in range(lower - 1)] + [1 - cfg.positive_rate])
    return pa.array(np.searchsorted(cuts, score).astype(np.int64))


def _dirty_table(
    cfg: GenerateConfig, rng: np.random.Generator, c: dict[str, Any], first_id: int
) -> dict[str, pa.Array]:
    """The tabular columns as written: nulls, impossible values and messy spellings added."""
    m, miss = len(c["amount"]), cfg.missing_rate
    bad_amount = rng.random(m) < cfg.impossible_rate
    bad_age = rng.random(m) < cfg.impossible_rate
    skus = pa.array([f"SKU-{i:05d}" for i in range(cfg.n_products)])
    return {
        "ticket_id": pa.array(np.arange(first_id, first_id + m, dtype=np.int64)),
        "created_at": pa.array(c["created"], mask=rng.random(m) < miss / 5),
        "amount": pa.array(
            np.where(bad_amount, -c["amount"], c["amount"]), mask=rng.random(m) < miss
        ),
        "customer_age": pa.array(
            np.where(bad_age, rng.choice([-1.0, 150.0, 999.0], m), c["age"]),
            mask=rng.random(m) < 1.6 * miss,
        ),
        "tenure_days": pa.array(c["tenure"]),
        "prior_tickets": pa.array(c["prior"]),
        "channel": _messy_category(CHANNELS, c["channel"], rng, 0.3, miss * 0.6),
        "region": _messy_category(REGIONS, c["region"], rng, 0.1, miss * 0.4),
        "product_sku": skus.take(pa.array(c["product"])),
        "is_member": pa.array(c["member"], mask=rng.random(m) < miss * 0.8),
    }


def make_part(cfg: GenerateConfig, seed: int, part: int, n: int, first_id: int) -> pa.Table:
    """One part of the table: `n` rows (duplicates included) whose ids start at `first_id`."""
    rng = np.random.default_rng([seed, part])
    n_dup = int(n * cfg.duplicate_rate)
    m = n - n_dup
    truth = _true_columns(cfg, rng, m)
    mood = rng.normal(-0.5, 1, m)  # how badly the ticket went, as its text tells: ~30% bad
    label = _target(cfg, _tabular_score(cfg, seed, truth), mood, rng)
    text = make_texts(mood, rng.integers(10_000, 99_999, size=m), rng, cfg.typo_rate)
    blank = rng.random(m)  # some texts empty, some missing
    text = pc.if_else(pa.array(blank < 2 * cfg.missing_rate), "", text)
    text = pc.if_else(pa.array(blank < cfg.missing_rate), pa.scalar(None, pa.string()), text)
    columns = _dirty_table(cfg, rng, truth, first_id)
    table = pa.table({**columns, "message": text, "label": label})
    # Duplicates sit right after their original, like a double-clicked submit button.
    order = np.sort(np.concatenate([np.arange(m), rng.choice(m, n_dup, replace=False)]))
    return table.take(pa.array(order))


def _write_part(args: tuple[GenerateConfig, int, int, int, int, Path]) -> int:
    cfg, seed, part, n, first_id, path = args
    table = make_part(cfg, seed, part, n, first_id)
    pq.write_table(table, path, compression="zstd", row_group_size=250_000)
    return table.num_rows


def generate(cfg: GenerateConfig, seed: int, out_dir: Path = OUTPUT_DIR) -> int:
    """Write the demo data as `part-*.parquet` under `out_dir` (atomically); returns rows."""
    with atomic_dir(out_dir) as tmp:
        jobs = [  # ids count on from the previous part's
            (cfg, seed, i, min(cfg.part_rows, cfg.rows - at), at + 1, tmp / f"part-{i:04d}.parquet")
            for i, at in enumerate(range(0, cfg.rows, cfg.part_rows))
        ]
        if cfg.workers > 1 and len(jobs) > 1:
            with ProcessPoolExecutor(max_workers=cfg.workers) as pool:
                rows = sum(pool.map(_write_part, jobs))
        else:
            rows = sum(map(_write_part, jobs))
    log.info("wrote %d rows in %d part files to %s", rows, len(jobs), out_dir)
    return rows


def demo_selected(data_path: str) -> bool:
    """Whether the data config reads from the generator's output (a file or glob inside it)."""
    path = Path(os.path.abspath(data_path))
    return "://" not in data_path and path.is_relative_to(OUTPUT_DIR.absolute())


def main(cfg: DictConfig) -> str:
    """Stage entry: write the demo data when `data.path` reads it; otherwise write nothing."""
    gen = validate(cfg.generate, GenerateConfig, "generate")
    data_path = str(cfg.data.path)
    if not demo_selected(data_path):
        OUTPUT_DIR.mkdir(parents=True, exist_ok=True)  # DVC expects the declared output
        return f"nothing generated: data.path {data_path!r} is not under {OUTPUT_DIR}"
    rows = generate(gen, int(cfg.seed))
    return f"{rows:,} {gen.task} demo rows → {OUTPUT_DIR}"
