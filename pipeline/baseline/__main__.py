"""`python -m pipeline.baseline [overrides]`: train, evaluate and register the baseline."""

import sys

from pipeline.baseline.core import main
from pipeline.common.stage import run_stage

if __name__ == "__main__":
    sys.exit(run_stage("baseline", main))
