"""The baseline: a linear model on imputed, scaled numbers, one-hot categories and TF-IDF text.

LogisticRegression for classification, Ridge for regression; `_target_` in the config swaps
either for another scikit-learn estimator (its arguments sit next to `_target_`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pipeline.common.tabular import FeaturesConfig, SklearnModel, instantiate


def _classifier() -> dict[str, Any]:
    return {"_target_": "sklearn.linear_model.LogisticRegression", "C": 1.0, "max_iter": 2000}


def _regressor() -> dict[str, Any]:
    return {"_target_": "sklearn.linear_model.Ridge", "alpha": 1.0}


@dataclass
class BaselineConfig:
    """`configs/baseline/`."""

    classifier: dict[str, Any] = field(default_factory=_classifier)  # binary and multiclass
    regressor: dict[str, Any] = field(default_factory=_regressor)
    features: FeaturesConfig = field(default_factory=FeaturesConfig)


class Baseline(SklearnModel):
    config_class = BaselineConfig

    def estimator(self) -> Any:
        key = "classifier" if self.profile.is_classification else "regressor"
        spec: dict[str, Any] = getattr(self.config, key)
        default = _classifier() if key == "classifier" else _regressor()
        if spec.get("_target_") != default["_target_"]:
            # The config is merged onto the dataclass default, so naming another class keeps
            # the default class's own arguments (C=1.0 ...): drop those still holding them.
            inherited = {k for k, v in default.items() if k != "_target_" and spec.get(k) == v}
            spec = {k: v for k, v in spec.items() if k not in inherited}
        return instantiate(spec, self.seed, f"configs/{self.name}: {key}")
