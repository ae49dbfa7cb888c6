"""`python -m pipeline.config [overrides]`: write params.yaml from configs/."""

import sys

from pipeline.common.stage import run_stage
from pipeline.config.core import main

if __name__ == "__main__":
    sys.exit(run_stage("config", main))
