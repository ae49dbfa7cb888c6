"""Helpers shared by every stage: configuration, atomic file output, logging, errors."""
