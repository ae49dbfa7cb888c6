"""`python -m pipeline.lightgbm [overrides]`: train, evaluate and register the LightGBM model."""

import sys

from pipeline.common.stage import run_stage
from pipeline.common.train import train_entry
from pipeline.lightgbm.core import LightGBM

if __name__ == "__main__":
    sys.exit(run_stage("lightgbm", train_entry(LightGBM, "lightgbm")))
