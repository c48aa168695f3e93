"""r1local: run DeepSeek-R1 distilled models locally."""

__version__ = "0.1.0"
