"""Offline code: data simulation and model training. Never imports pyflink."""
