"""sipflow: automated SIP testing where every test session is a durable Temporal workflow."""

__version__ = "0.6.0"
