"""`python -m pipeline.generate [overrides]`: write data/raw/demo/part-*.parquet."""

import sys

from pipeline.common.stage import run_stage
from pipeline.generate.core import main

if __name__ == "__main__":
    sys.exit(run_stage("generate", main))
