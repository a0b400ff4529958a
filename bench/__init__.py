"""Benchmarks: ``python -m bench.<name>`` prints a table, writes ``bench/results/<name>.json``."""
