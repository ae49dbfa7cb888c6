"""`python -m pipeline.text_model [overrides]`: fine-tune the text model on data/processed/."""

import sys

from pipeline.common.stage import run_stage
from pipeline.common.train import train_entry
from pipeline.text_model.core import TextModel

if __name__ == "__main__":
    sys.exit(run_stage("text_model", train_entry(TextModel, "text_model")))
