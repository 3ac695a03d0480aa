"""stream-risk: streaming behaviour monitoring for customer credit risk."""

__version__ = "0.1.0"
