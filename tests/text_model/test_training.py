"""Which weights training keeps: the lowest validation loss, and early stopping that fires."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from pipeline.common.data import Splits
from pipeline.text_model.core import sample
from tests.text_model.conftest import fit, tiny_config

VALIDATION_LINE = re.compile(r"step (\d+)/\d+: train_loss=\S+ val_loss=(\d+\.\d+)")


def test_the_kept_weights_have_the_lowest_validation_loss_seen(
    processed: Callable[..., Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = Splits.load(processed("binary") / "data" / "processed")
    config = tiny_config(tmp_path, max_steps=40, val_check_interval=5, early_stopping_patience=7)
    with caplog.at_level(logging.INFO, logger="pipeline.text_model"):
        model = fit(data, config)
    seen = [float(loss) for _, loss in VALIDATION_LINE.findall(caplog.text)]
    warm = float(re.findall(r"warm start: val_loss=(\d+\.\d+)", caplog.text)[0])
    assert len(seen) == 8
    best = model.params()["best_val_loss"]
    assert isinstance(best, float) and best == pytest.approx(min([warm, *seen]), abs=1e-4)
    # The weights in hand are that checkpoint's: their cross-entropy on the same rows agrees.
    val = sample(data.val, config.val_rows, 7)
    proba = model.predict(val)
    loss = -np.mean(np.log(proba[np.arange(len(val)), val.y.astype(int)]))
    assert loss == pytest.approx(best, abs=1e-4)


def test_early_stopping_fires_when_the_validation_loss_stops_falling(
    processed: Callable[..., Path], tmp_path: Path
) -> None:
    data = Splits.load(processed("binary") / "data" / "processed")
    # A zero learning rate leaves the weights, so the validation loss never improves on its
    # first value: validations at steps 5, 10 and 15, then patience 2 is spent.
    config = tiny_config(
        tmp_path, max_steps=60, val_check_interval=5, early_stopping_patience=2, lr=0.0,
        head_lr=0.0,
    )  # fmt: skip
    facts = fit(data, config).params()
    assert facts["steps"] == 15 and facts["stopped_early"] is True
    # Unchanged weights: the warm start or the first validation's checkpoint (the same
    # weights; the two losses may differ in the last float32 bits) is what training keeps.
    assert facts["best_checkpoint"] in ("warm start", "best-step=5.ckpt")
