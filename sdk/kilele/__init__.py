"""Kilele's Python SDK: ``from kilele import Client``."""
from kilele.client import Client
from kilele.constants import BudgetOption, ModelAccessRight, Task, UserType
from kilele.errors import ConnectionFailedError, KileleError

__all__ = ["Client", "KileleError", "ConnectionFailedError", "UserType", "Task", "ModelAccessRight", "BudgetOption"]
__version__ = "0.1.0"
