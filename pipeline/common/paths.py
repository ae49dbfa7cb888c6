"""Fixed locations every stage agrees on. DVC tracks these paths, so they never carry timestamps."""

from __future__ import annotations

from pathlib import Path

CONFIG_DIR = "configs"
PARAMS_FILE = "params.yaml"
CARD_FILE = "card.json"  # in models/trained/<model>/: written by each model stage


def repo_root() -> Path:
    """The project root: the directory that holds `configs/` (walks up from the working dir)."""
    here = Path.cwd().resolve()
    found = (c for c in (here, *here.parents) if (c / CONFIG_DIR / "config.yaml").is_file())
    return next(found, here)
