"""Pure feature logic (no pyflink): one definition for the stream, the backfill and training.

Each keyed stage (:mod:`features.card`, :mod:`features.terminal`, :mod:`features.device`) has a
compact per-key state (one blob per key of packed columns, :mod:`features.packed`, so a Flink
ValueState costs one get and one put per event) with ``update``/``values``-style functions taking
explicit epoch-ms event times; what each computes (aggregations, windows) is read from the spec
by :mod:`features.plan`, and values are set by name. :mod:`features.stages` holds the one
per-stage entry point the Flink operators and :mod:`features.compute` (the stages chained in
plain Python for whole event lists) both call.
The offline side reads and writes history files: :mod:`features.history` (backfill input
staging) and :mod:`features.table` (the enriched-features table). The Flink wrappers are in
``udfs/``.
"""
