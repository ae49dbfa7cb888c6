"""Stage `export`: every trained model to ONNX, with proven parity, a serving contract, lineage."""
