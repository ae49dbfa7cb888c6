"""LightGBM on encoded features, early-stopped on val by the loss it trains for, deterministic
(same config and data, byte-identical booster); regression may add a quantile interval."""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.common.errors import PipelineError
from pipeline.common.io import write_json
from pipeline.common.parity import edge_variants
from pipeline.common.tabular import SklearnModel, plain_vocabularies
from pipeline.lightgbm import search, trees
from pipeline.lightgbm.config import OBJECTIVES, LightGBMConfig

if TYPE_CHECKING:
    from onnx import ModelProto

    from pipeline.common.data import Split, Splits
    from pipeline.common.tracking import Run
    from serving.schemas import GraphInput

log = logging.getLogger(__name__)
Matrix = Any  # the preprocessor's output: a NumPy array or a SciPy sparse matrix


class LightGBM(SklearnModel):
    config_class = LightGBMConfig
    requirements = ("lightgbm",)
    config: LightGBMConfig
    bands_: list[Any]
    search_: search.SearchResult | None

    def estimator(self, **changes: Any) -> Any:
        """LGBMClassifier / LGBMRegressor with the settings that make two runs identical."""
        from lightgbm import LGBMClassifier, LGBMRegressor

        params: dict[str, Any] = {**asdict(self.config.params), **changes}
        if not self.profile.is_classification:
            params.setdefault("objective", self.config.objective)
            params.setdefault("alpha", self.config.alpha)
        cls = LGBMClassifier if self.profile.is_classification else LGBMRegressor
        return cls(
            **params,
            random_state=self.seed,
            deterministic=True,
            force_row_wise=True,  # no timing-based row/col-wise choice, so no run-to-run change
            importance_type="gain",  # feature_importances_, what the card and report rank by
            verbose=-1,
        )

    def check(self) -> None:
        cfg, where = self.config, f"configs/{self.name}"
        if cfg.objective not in OBJECTIVES:
            raise PipelineError(
                f"objective '{cfg.objective}' is not one of {OBJECTIVES}",
                where=where,
                fix="pick one",
            )
        if self.profile.is_classification and (cfg.objective != "l2" or cfg.interval):
            raise PipelineError(
                "objective and interval apply to regression; classification trains log loss",
                where=where,
                fix="remove lightgbm.objective / lightgbm.interval",
            )
        if cfg.interval is not None and not (
            len(cfg.interval) == 2 and 0 < cfg.interval[0] < cfg.interval[1] < 1
        ):
            raise PipelineError(
                f"interval {cfg.interval} must be two quantiles 0 < lo < hi < 1",
                where=where,
                fix="e.g. interval: [0.1, 0.9]",
            )
        super().check()

    def fit(self, data: Splits, run: Run | None) -> None:
        from sklearn.pipeline import Pipeline

        columns = self.columns()
        frame = data.train.frame(columns)
        self.example_ = frame.head(5)
        features = self.preprocessor()
        train = (features.fit_transform(frame, data.train.y), data.train.y)
        val = (features.transform(data.val.frame(columns)), data.val.y)
        self.search_ = None
        if self.config.optuna.enabled:

            def score(params: search.Params) -> float:
                return best_loss(self.boost(train, val, **params))

            self.search_ = search.search(score, self.config.optuna, self.seed, run)
        tuned = self.search_.best_params if self.search_ else {}
        model = self.boost(train, val, **tuned)
        self.pipeline_ = plain_vocabularies(Pipeline([("features", features), ("model", model)]))
        quantiles = self.config.interval or []
        self.bands_ = [
            self.boost(train, val, **tuned, objective="quantile", alpha=q) for q in quantiles
        ]

    def boost(
        self, train: tuple[Matrix, np.ndarray], val: tuple[Matrix, np.ndarray], **changes: Any
    ) -> Any:
        """Fit one booster, early-stopped on val by its own objective's loss."""
        import lightgbm

        lightgbm.register_logger(log)  # the val loss every 100 rounds: long fits stay visible
        stop = lightgbm.early_stopping(self.config.early_stopping_rounds, verbose=False)
        model = self.estimator(**changes)
        model.fit(
            *train,
            eval_X=(val[0],),
            eval_y=(val[1],),
            callbacks=[stop, lightgbm.log_evaluation(100)],
        )
        return model

    def edge_splits(self, data: Splits) -> dict[str, Split]:
        """The default edge rows, plus rows on the trees' thresholds of each raw numeric column and
        one float64 / float32 step either side (where rounding would bite)."""
        out = super().edge_splits(data)
        numeric = self.profile.features.numeric
        if self.features().numeric != "passthrough" or not numeric:
            return out
        edges = trees.threshold_edges(self.pipeline_[-1].booster_)
        # passthrough: transformed feature k is raw numeric column k
        changes = [(c, edges[k]) for k, c in enumerate(numeric) if k in edges]
        if changes:
            out["edge:thresholds"] = edge_variants(data, changes)
        return out

    def predict_interval(self, split: Split) -> np.ndarray | None:
        if not self.bands_:
            return None
        matrix = self.pipeline_[:-1].transform(split.frame(self.columns()))
        return np.column_stack([band.predict(matrix) for band in self.bands_])

    def onnx_model(self, inputs: list[GraphInput]) -> ModelProto:
        trees.register_lightgbm()
        model = super().onnx_model(inputs)
        if self.profile.is_classification:
            trees.margins_then_probabilities(model.graph, self.profile.n_classes)
        trees.exact_thresholds(model.graph, self.pipeline_[-1].booster_)
        if self.bands_:
            trees.add_interval(model.graph, self.bands_, self.pipeline_[-1].n_features_in_)
        return model

    def save(self, out_dir: Path) -> None:
        super().save(out_dir)
        self.pipeline_[-1].booster_.save_model(out_dir / "booster.txt")
        for band, q in zip(self.bands_, self.config.interval or [], strict=True):
            band.booster_.save_model(out_dir / f"booster_q{q:g}.txt")
        if self.search_ is not None:
            write_json(out_dir / "search.json", asdict(self.search_))

    def params(self) -> dict[str, float | int | str | bool | None]:
        model = self.pipeline_[-1]
        facts: dict[str, float | int | str | bool | None] = {
            "best_iteration": int(model.best_iteration_),
            "val_loss": best_loss(model),
            "n_features": int(model.n_features_in_),
        }
        for band, q in zip(self.bands_, self.config.interval or [], strict=True):
            facts[f"best_iteration_q{q:g}"] = int(band.best_iteration_)
        if self.search_ is not None:
            facts.update({f"tuned.{k}": v for k, v in self.search_.best_params.items()})
        return facts


def best_loss(model: Any) -> float:
    """The val loss at the best iteration (the only metric: the objective's own)."""
    (scores,) = model.best_score_.values()
    return float(next(iter(scores.values())))
