"""`python -m pipeline.etl [overrides]`: write data/processed/ and metrics/etl.json."""

import sys

from pipeline.common.stage import run_stage
from pipeline.etl.core import main

if __name__ == "__main__":
    sys.exit(run_stage("etl", main))
