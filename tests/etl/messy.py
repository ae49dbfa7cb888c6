"""A small, realistic, messy CSV of home-repair jobs, and data configs for it.

Dates as a spreadsheet in Europe writes them (`24-02-2015 11.35`) with a few ISO ones and some
garbage; numbers with blanks, impossible values and `inf`; yes/no flags; region names spelt five
ways, accented, and some seen once; notes with emoji, other scripts, combining marks, quotes,
commas and line breaks, some empty and one 5,000 characters long; a few exact duplicate rows;
a numeric target (`cost`) and a class target (`outcome`).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import OmegaConf

from pipeline.common.config import validate
from pipeline.etl.config import DataConfig, EtlConfig

REGIONS = {"north": 40.0, "south": 0.0, "zürich": 90.0, "são paulo": -10.0}
SPELLINGS = {
    "north": [" North ", "NORTH", "north"],
    "south": ["South", "  south"],
    "zürich": ["Zürich", "ZÜRICH "],
    "são paulo": ["São  Paulo", "são paulo"],
}
RARE = ["Île-de-France", "Reykjavík"]  # one row each
NOTES = [
    "🔧 leak under the sink",
    "Tap drips; washer worn",
    '"Urgent", says the tenant',
    "漏水 (water leak) in the bathroom",
    "Café boiler: no hot water",  # e + combining acute accent
    "line one\nline two, with a comma",
    "",
    "Boiler service — annual",
]
COLUMNS = ["job_ref", "booked", "hours", "urgent", "region", "notes", "cost", "outcome"]


def jobs(rows: int = 300, seed: int = 0) -> list[dict[str, Any]]:
    """The rows as the CSV holds them (strings); cost and outcome follow hours, urgency, region."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(rows):
        hours = float(rng.gamma(2.0, 1.5))
        urgent = bool(rng.random() < 0.3)
        region = list(REGIONS)[i % len(REGIONS)]
        cost = 50 + 40 * hours + 80 * urgent + REGIONS[region] + rng.normal(0, 15)
        day, month, hour, minute = 1 + i % 28, 1 + i % 12, 8 + i % 10, (7 * i) % 60
        booked = f"{day:02d}-{month:02d}-2015 {hour:02d}.{minute:02d}"
        if i % 17 == 5:
            booked = f"2015-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:00+01:00"
        out.append(
            {
                "job_ref": f"J-{i:05d}",
                "booked": "" if i % 23 == 7 else booked,
                "hours": "" if i % 19 == 3 else f"{hours:.2f}",
                "urgent": ["yes", "no", "Y", "No"][i % 4] if i % 13 else "",
                "region": SPELLINGS[region][i % len(SPELLINGS[region])],
                "notes": NOTES[i % len(NOTES)],
                "cost": f"{cost:.2f}",
                "outcome": "disputed" if cost > 230 or (urgent and i % 3 == 0) else "paid",
            }
        )
    out[10]["hours"], out[11]["hours"], out[12]["hours"] = "-1", "1e6", "inf"  # impossible
    out[20]["booked"] = "soon"  # unreadable: the row is rejected
    out[30]["notes"] = "x" * 5_000
    out[40]["region"], out[41]["region"] = RARE
    return [*out, dict(out[50]), dict(out[51])]  # exact duplicates


def write_csv(path: Path, rows: list[dict[str, Any]], newline: str = "\n") -> Path:
    """Write `rows` as CSV with the given line ending (quoted fields keep their own newlines)."""
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator=newline)
    writer.writeheader()
    writer.writerows(rows)
    path.write_bytes(buffer.getvalue().encode("utf-8"))
    return path


def data_config(path: Path | str, **keys: Any) -> DataConfig:
    """A data config for the jobs CSV (classification of `outcome`), keys replaced by `keys`."""
    node = {
        "name": "jobs",
        "path": str(path),
        "target": "outcome",
        "id": "job_ref",
        "text": "notes",
        "categorical": ["region"],
        "numeric": ["hours", "urgent"],
        "datetime": ["booked"],
        "drop": ["cost"],
        "bounds": {"hours": [0, 100]},
        "datetime_format": {"booked": "%d-%m-%Y %H.%M"},
        "timezone": "Europe/Zurich",
    }
    return config(**(node | keys))


def config(**keys: Any) -> DataConfig:
    """A data config from keyword arguments, validated as the stage validates it."""
    return validate(OmegaConf.create(keys), DataConfig, "data")


def etl_config(tmp: Path, **overrides: Any) -> EtlConfig:
    """A small-footprint ETL config spilling under `tmp`."""
    values: dict[str, Any] = {
        "memory_limit": "256MB",
        "spill_dir": str(tmp / "spill"),
        "batch_rows": 100,
        "threads": 1,
    }
    return EtlConfig(**(values | overrides))
