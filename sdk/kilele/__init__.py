"""Kilele's Python SDK: ``from kilele import Client``."""
from kilele.client import Client
from kilele.errors import KileleError

__all__ = ["Client", "KileleError"]
__version__ = "0.1.0"
