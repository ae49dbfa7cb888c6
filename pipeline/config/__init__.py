"""Stage `config`: compose `configs/` into `params.yaml`, the snapshot DVC compares key by key."""
