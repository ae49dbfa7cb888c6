"""Stage `etl`: the data contract in, validated and cleaned train/val/test Parquet splits out."""
