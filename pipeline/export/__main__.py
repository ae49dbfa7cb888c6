"""`python -m pipeline.export [overrides]`: write models/export/ and metrics/export.json."""

import sys

from pipeline.common.stage import run_stage
from pipeline.export.core import main

if __name__ == "__main__":
    sys.exit(run_stage("export", main))
