"""`python -m pipeline.text_model [overrides]`: fine-tune the text model on data/processed/."""

import sys

from pipeline.common.stage import run_stage
from pipeline.text_model.core import run_text_model

if __name__ == "__main__":
    sys.exit(run_stage("text_model", run_text_model))
