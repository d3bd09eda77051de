"""Benchmarks for mplogger (run with ``python -m benchmarks``)."""
