"""`python -m pipeline.etl [overrides]`: write data/processed/ and metrics/etl.json."""

import sys

from pipeline.etl.allocator import keep_freed_memory

if __name__ == "__main__":
    keep_freed_memory()  # before the imports below load Polars
    from pipeline.common.stage import run_stage
    from pipeline.etl.core import etl_entry

    sys.exit(run_stage("etl", etl_entry))
