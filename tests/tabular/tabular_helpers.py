"""Shared bits of the tabular tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import skops.io
from omegaconf import DictConfig

from pipeline.common.config import compose
from pipeline.common.dataset import load_profile
from pipeline.common.tabular import model_frame

REPO = Path(__file__).resolve().parents[2]


def load_model(path: Path):  # type: ignore[no-untyped-def]
    """Load a model.skops the stage wrote (its types are ours, so trusted)."""
    return skops.io.load(path, trusted=skops.io.get_untrusted_types(file=path))


def hostile_rows(processed_dir: Path) -> pd.DataFrame:
    """Test rows with every input missing or unseen, as a caller might send them."""
    profile = load_profile(processed_dir)
    raw = pd.read_parquet(processed_dir / "test.parquet").head(6).copy()
    raw = raw.astype({c: object for c in [*profile.categorical, profile.text] if c})
    for col in profile.model_numeric:
        raw.loc[raw.index[:3], col] = np.nan
    for col in profile.categorical:
        raw.loc[raw.index[0], col] = None
        raw.loc[raw.index[1], col] = np.nan
        raw.loc[raw.index[2:], col] = "never-seen-level"
    if profile.text:
        raw.loc[raw.index[0], profile.text] = None
        raw.loc[raw.index[1], profile.text] = "zzz unseen vocabulary qqq"
    return model_frame(raw, profile)


def assert_valid_proba(proba: np.ndarray, rows: int, n_classes: int) -> None:
    assert proba.shape == (rows, n_classes)
    assert np.isfinite(proba).all()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-9)


def stage_cfg(tracking_uri: str, *overrides: str) -> DictConfig:
    """The project's composed config (tiny profile), tracking pointed at the test store."""
    return compose(
        ["profile=tiny", f"tracking.uri={tracking_uri}", "tracking.experiment=tests", *overrides],
        config_dir=REPO / "configs",
    )
