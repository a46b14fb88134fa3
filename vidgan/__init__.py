"""vidgan: anonymize and transform faces in recorded video."""

__version__ = "0.1.0"
