"""Local infrastructure: pinned jars, the single-node Kafka broker and the standalone Flink cluster."""
