"""Inference server: ONNX Runtime behind a small ASGI app. Imports nothing from `pipeline`."""
