"""Reproducible payment-stream simulator: Handbook-compatible and realistic profiles.

See :mod:`training.simulator.run` for the entry point used by ``riskstream simulate``.
"""
