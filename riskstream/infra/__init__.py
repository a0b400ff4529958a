"""Local infrastructure: pinned jars, the one-node Kafka broker and the standalone Flink cluster."""
