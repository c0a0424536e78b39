"""The composed web application of the embedded mode (every system under its prefix)."""
