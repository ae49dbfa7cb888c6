"""The baseline: a linear model on imputed, scaled numbers, one-hot categories and TF-IDF text.
`_target_` in the config swaps it for another scikit-learn estimator (arguments beside it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pipeline.common.tabular import FeaturesConfig, SklearnModel, instantiate

LOGISTIC = {"_target_": "sklearn.linear_model.LogisticRegression", "C": 1.0, "max_iter": 2000}
RIDGE = {"_target_": "sklearn.linear_model.Ridge", "alpha": 1.0}


@dataclass
class BaselineConfig:
    """`configs/baseline/`."""

    classifier: dict[str, Any] = field(default_factory=LOGISTIC.copy)  # binary and multiclass
    regressor: dict[str, Any] = field(default_factory=RIDGE.copy)
    features: FeaturesConfig = field(default_factory=FeaturesConfig)


class Baseline(SklearnModel):
    config_class = BaselineConfig

    def estimator(self) -> Any:
        key = "classifier" if self.profile.is_classification else "regressor"
        spec: dict[str, Any] = getattr(self.config, key)
        default = LOGISTIC if key == "classifier" else RIDGE
        if spec.get("_target_") != default["_target_"]:
            # The config is merged onto the default, so naming another class keeps the default
            # class's own arguments (C=1.0 ...): drop those still holding them.
            spec = {k: v for k, v in spec.items() if k not in default or default[k] != v}
        return instantiate(spec, self.seed, f"configs/{self.name}: {key}")
