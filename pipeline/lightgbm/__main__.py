"""`python -m pipeline.lightgbm [overrides]`: train, evaluate and register the LightGBM model."""

import sys

from pipeline.common.stage import run_stage
from pipeline.lightgbm.core import main

if __name__ == "__main__":
    sys.exit(run_stage("lightgbm", main))
