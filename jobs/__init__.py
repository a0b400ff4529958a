"""Job graphs: each module exposes ``build(...)`` (the graph) and ``main(settings)`` (run it)."""
