"""Every Python function that runs inside Flink; thin wrappers around pure logic."""
