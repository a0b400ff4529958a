"""Windowed analytics over scored payments: pure window logic plus thin Flink wrappers.

``records`` (the input contract), ``windows`` (assignment, aggregation and the per-key state
machine), ``encode`` (output JSON) and ``offline`` (the same windows over a finished list of
events) import no pyflink; only ``stages`` does.
"""
