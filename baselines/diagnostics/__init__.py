"""Reproducible measurements of the benchmark and its protocol (baselines/RESULTS.md cites their outputs)."""
