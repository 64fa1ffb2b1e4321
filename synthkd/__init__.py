"""synthkd: distil a large teacher LLM into small, fast students through versioned corpora."""

__version__ = "0.1.0"
