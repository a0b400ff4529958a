"""Pure, timestamp-driven feature logic (no pyflink): one definition for stream, backfill, training.

Each keyed stage has a compact per-key state (one msgpack blob per key, so a Flink ValueState costs
one get and one put per event) with ``update``/``values``-style functions taking explicit epoch-ms
event times. :mod:`udfs.features.compute` chains the stages in plain Python for whole event lists.
"""
