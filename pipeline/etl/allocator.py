"""How the ETL asks Polars' allocator to keep freed memory for the next batch.

Polars allocates with jemalloc and, at its import, sets it to hand freed pages back to the
kernel after half a second (`_RJEM_MALLOC_CONF`, appending whatever the variable already
holds); the next batch of the row pass then page-faults the same amount in again, and the
kernel zeroes every page. Keeping dirty pages for 30 s removes about a quarter
of the page faults and 0.2 s of about 7 s on 5M demo rows (bench/etl_vs_pandas.py) for a few tens
of MB more resident memory. jemalloc reads its options once, when Polars is loaded, so they
go into the environment of a process that has not imported Polars yet, where Polars appends
them to its own (the later value wins).
"""

from __future__ import annotations

import os
import sys

POLARS_ALLOCATOR_ENV = {"_RJEM_MALLOC_CONF": "dirty_decay_ms:30000,muzzy_decay_ms:30000"}


def keep_freed_memory() -> bool:
    """Set the options for this process (before Polars loads); False when it is too late."""
    if "polars" in sys.modules:
        return False
    for key, value in POLARS_ALLOCATOR_ENV.items():
        os.environ.setdefault(key, value)  # a user's own setting wins
    return True
