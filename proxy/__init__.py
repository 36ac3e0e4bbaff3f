"""pypi-proxy: a private package index and PyPI caching proxy behind one URL."""

__version__ = "0.1.0"
