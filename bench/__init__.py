"""Benchmarks: scripts run as ``python bench/NAME.py``; each prints a ``RESULT key=value ...`` line last."""
