"""Training pipeline: one package per DVC stage, shared helpers in `pipeline.common`."""
