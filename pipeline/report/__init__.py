"""Stage `report`: one self-contained HTML page comparing every model, after `dvc repro`."""
