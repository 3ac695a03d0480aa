"""Sinks: where warnings and profiles go besides Kafka.

Each sink has ``setup()`` and ``write(batch)`` and does no I/O in its constructor.
"""
