"""Stage `generate`: deterministic, realistic demo data (support tickets) as Parquet part files."""
