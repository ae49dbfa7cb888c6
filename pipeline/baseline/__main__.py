"""`python -m pipeline.baseline [overrides]`: train, evaluate and register the baseline."""

import sys

from pipeline.baseline.core import Baseline
from pipeline.common.stage import run_stage
from pipeline.common.train import train_entry

if __name__ == "__main__":
    sys.exit(run_stage("baseline", train_entry(Baseline, "baseline")))
