"""The support library tests, benchmarks and the CLI share (one tested copy of each helper).

- :mod:`riskstream.support.kafka_io`: :func:`read_to_end` (a topic up to its end offsets, read
  committed by default; a timeout raises :class:`ReadTimeoutError` naming the topic and how far it
  got) and :func:`produce_at_rate`;
- :mod:`riskstream.support.topics`: :func:`create_topic` and :func:`private_settings` (fresh
  topics per role plus setting overrides, for a private run);
- :mod:`riskstream.support.factories`: valid payments and labels;
- waiting for a condition is :func:`riskstream.infra.process.wait_until`.
"""
