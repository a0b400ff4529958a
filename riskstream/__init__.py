"""riskstream: real-time AI risk scoring on event streams, built on PyFlink.

The ``riskstream`` package is the top layer: the CLI and the services it drives (the local Kafka
broker and Flink cluster, job submission, replay, archive, demo, live feed). Settings and errors
live in :mod:`core`, job graphs in :mod:`jobs`.
"""

__version__ = "0.1.0"
