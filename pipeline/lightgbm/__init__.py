"""Stage `lightgbm`: gradient-boosted trees on upstream-encoded features, early-stopped on val."""
