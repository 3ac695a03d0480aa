"""Sinks: where warnings and profiles go besides Kafka. Each has ``setup()`` and ``write(batch)``."""
