"""riskstream: real-time AI risk scoring on event streams, built on PyFlink.

The ``riskstream`` package holds what is neither a job graph nor a Flink function nor offline
training: the CLI, configuration, and the scripts that run the local Kafka broker and Flink cluster.
"""

__version__ = "0.1.0"
