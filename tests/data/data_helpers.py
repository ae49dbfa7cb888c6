"""Shared helpers for the data tests: small contracts, configs and file digests."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from pipeline.common.config import validate
from pipeline.etl.contract import DataContract, EtlConfig
from serving import features

ROOT = Path(__file__).resolve().parents[2]


def demo_contract(path: str, **overrides: Any) -> DataContract:
    """configs/data/demo.yaml with `path` and any other keys replaced."""
    node = OmegaConf.load(ROOT / "configs" / "data" / "demo.yaml")
    node.path = path
    for key, value in overrides.items():
        OmegaConf.update(node, key, value, merge=False)
    return validate(node, DataContract, "data")


def contract(**keys: Any) -> DataContract:
    """A contract from keyword arguments (split settings under `split`)."""
    return validate(OmegaConf.create(keys), DataContract, "data")


def etl_config(tmp: Path, **overrides: Any) -> EtlConfig:
    """A small-footprint ETL config spilling under `tmp`."""
    values: dict[str, Any] = {
        "memory_limit": "256MB",
        "spill_dir": str(tmp / "spill"),
        "batch_rows": 700,
        "threads": 1,
    }
    values.update(overrides)
    return EtlConfig(**values)


def digests(directory: Path) -> dict[str, str]:
    """File name → sha256 of every file under `directory`."""
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.iterdir())
        if p.is_file()
    }


def assert_plain_text_stats(stats: dict[str, Any], values: list[str | None]) -> None:
    """The text statistics equal their plain-Python definitions (a missing text counts as "")."""
    plain = ["" if v is None else v for v in values]
    assert stats["chars"].tolist() == [float(len(t)) for t in plain]
    assert stats["words"].tolist() == [
        float(len(re.findall(features.WORD_PATTERN, t))) for t in plain
    ]
    assert stats["exclaims"].tolist() == [float(t.count("!")) for t in plain]
    assert stats["digits"].tolist() == [float(len(re.findall("[0-9]", t))) for t in plain]
