"""`python -m pipeline.export [overrides]`: export the trained models to models/export/."""

import sys

from pipeline.common.stage import run_stage
from pipeline.export.core import export_entry

if __name__ == "__main__":
    sys.exit(run_stage("export", export_entry))
