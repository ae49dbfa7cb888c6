"""Stage `export`: each model's graph proven through the serving code, and the contract."""
