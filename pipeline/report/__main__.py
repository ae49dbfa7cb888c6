"""`python -m pipeline.report [overrides]`: write reports/report.html."""

import sys

from pipeline.common.stage import run_stage
from pipeline.report.core import main

if __name__ == "__main__":
    sys.exit(run_stage("report", main))
